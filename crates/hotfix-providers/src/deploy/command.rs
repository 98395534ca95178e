//! The `command` deployer: the team's own scripts.
//!
//! Each script gets `HOTFIX_INCIDENT`, `HOTFIX_SHA`, `HOTFIX_BRANCH`,
//! `HOTFIX_PR` and `HOTFIX_ENV` (`preview`/`production`) in its environment
//! and runs from the repository root. Scripts should be idempotent by sha: a
//! re-run after a crash calls them again with the same values.

use std::path::PathBuf;
use std::time::Duration;

use hotfix_core::config::DeployConfig;
use hotfix_core::provider::{DeployAction, DeployCtx, DeployError, Deployer, Deployment};

use super::process::run;

pub struct CommandDeployer {
    root: PathBuf,
    log_dir: PathBuf,
    cfg: DeployConfig,
}

impl CommandDeployer {
    pub fn new(root: PathBuf, log_dir: PathBuf, cfg: DeployConfig) -> CommandDeployer {
        CommandDeployer { root, log_dir, cfg }
    }

    fn timeout(&self) -> Duration {
        self.cfg.timeout.0
    }

    fn exec(
        &self,
        what: &'static str,
        command: Option<&String>,
        ctx: &DeployCtx,
        env_name: &str,
    ) -> Result<String, DeployError> {
        let command = command.ok_or(DeployError::NotConfigured(what))?;
        let env = vec![
            ("HOTFIX_INCIDENT".to_string(), ctx.incident.to_string()),
            ("HOTFIX_SHA".to_string(), ctx.sha.clone()),
            ("HOTFIX_BRANCH".to_string(), ctx.branch.clone()),
            (
                "HOTFIX_PR".to_string(),
                ctx.pr.map(|p| p.to_string()).unwrap_or_default(),
            ),
            ("HOTFIX_ENV".to_string(), env_name.to_string()),
        ];
        Ok(run(command, &self.root, &env, self.timeout(), &self.log(ctx))?.stdout)
    }

    /// One log per incident: its previews, deploys and rollbacks in order.
    fn log(&self, ctx: &DeployCtx) -> PathBuf {
        self.log_dir.join(format!("{}.log", ctx.incident))
    }
}

impl Deployer for CommandDeployer {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let out = self.exec(
            "[deploy] preview",
            self.cfg.preview.as_ref(),
            ctx,
            "preview",
        )?;
        let url = out
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(DeployError::Failed(format!(
                "the preview command must print the preview URL as the last line of its output; got {:?}",
                url
            )));
        }
        Ok(Deployment {
            id: None,
            url: Some(url),
            build: None,
        })
    }

    fn remove_preview(&self, ctx: &DeployCtx) -> Result<(), DeployError> {
        match &self.cfg.remove_preview {
            None => Ok(()),
            Some(c) => self
                .exec("[deploy] remove_preview", Some(c), ctx, "preview")
                .map(drop),
        }
    }

    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        self.exec(
            "[deploy] production",
            self.cfg.production.as_ref(),
            ctx,
            "production",
        )?;
        Ok(Deployment {
            id: None,
            url: self.cfg.health_url.clone(),
            build: None,
        })
    }

    fn rollback(&self, ctx: &DeployCtx, _previous: Option<&str>) -> Result<(), DeployError> {
        self.exec(
            "[deploy] rollback",
            self.cfg.rollback.as_ref(),
            ctx,
            "production",
        )
        .map(drop)
    }

    fn health_url(&self) -> Option<String> {
        self.cfg.health_url.clone()
    }

    fn log_path(&self, ctx: &DeployCtx, _action: DeployAction) -> Option<PathBuf> {
        Some(self.log(ctx))
    }
}
