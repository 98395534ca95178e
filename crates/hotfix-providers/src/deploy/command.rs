//! The `command` deployer: the team's own scripts.
//!
//! Each script gets `HOTFIX_INCIDENT`, `HOTFIX_SHA`, `HOTFIX_BRANCH`,
//! `HOTFIX_PR` and `HOTFIX_ENV` (`preview`/`production`) in its environment
//! and runs from the repository root. Scripts should be idempotent by sha: a
//! re-run after a crash calls them again with the same values.
//!
//! Build once (issue 13): every script also gets `HOTFIX_TREE`, the git tree
//! of `HOTFIX_SHA`; a production deploy gets `HOTFIX_PREVIEW_SHA`, the
//! preview that passed its smoke checks, and `HOTFIX_PREVIEWED` = `1` when
//! the merge's tree equals that preview's tree (main did not move: the
//! preview's artifact is the one to ship), `0` otherwise. A script that
//! promoted the preview's artifact instead of building says so with a line
//! `HOTFIX_PROMOTED=<the previewed sha>` on its output: the deploy is then
//! recorded as running *the tested build*. Nothing is inferred from a
//! script's silence.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hotfix_core::config::DeployConfig;
use hotfix_core::provider::{
    BuildReport, DeployAction, DeployCtx, DeployError, Deployer, Deployment,
};

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
            (
                hotfix_core::env_vars::HOTFIX_INCIDENT.to_string(),
                ctx.incident.to_string(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_SHA.to_string(),
                ctx.sha.clone(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_BRANCH.to_string(),
                ctx.branch.clone(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_PR.to_string(),
                ctx.pr.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_ENV.to_string(),
                env_name.to_string(),
            ),
        ];
        let env = [env, build_env(ctx)].concat();
        Ok(run(command, &self.root, &env, self.timeout(), &self.log(ctx))?.stdout)
    }

    /// One log per incident: its previews, deploys and rollbacks in order.
    fn log(&self, ctx: &DeployCtx) -> PathBuf {
        self.log_dir.join(format!("{}.log", ctx.incident))
    }
}

/// The build-once variables: the tree of the sha, and for a production
/// deploy the previewed sha and whether its tree is the one deployed. Always
/// set (empty or `0` when unknown), so a value in hotfix's own environment
/// never leaks into a script as if it were about this deploy.
fn build_env(ctx: &DeployCtx) -> Vec<(String, String)> {
    let tree = ctx.tree.clone().unwrap_or_default();
    let previewed = ctx
        .previewed
        .as_ref()
        .is_some_and(|p| !tree.is_empty() && p.tree == tree);
    vec![
        (hotfix_core::env_vars::HOTFIX_TREE.to_string(), tree),
        (
            hotfix_core::env_vars::HOTFIX_PREVIEW_SHA.to_string(),
            ctx.previewed
                .as_ref()
                .map(|p| p.sha.clone())
                .unwrap_or_default(),
        ),
        (
            hotfix_core::env_vars::HOTFIX_PREVIEWED.to_string(),
            if previewed { "1" } else { "0" }.to_string(),
        ),
    ]
}

/// The sha a production script says it promoted (`HOTFIX_PROMOTED=<sha>`
/// on a line of its output, the last one wins), if any.
fn promoted(out: &str) -> Option<String> {
    out.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("HOTFIX_PROMOTED=")
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    })
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
        let started = Instant::now();
        let out = self.exec(
            "[deploy] production",
            self.cfg.production.as_ref(),
            ctx,
            "production",
        )?;
        Ok(Deployment {
            id: None,
            url: self.cfg.health_url.clone(),
            build: promoted(&out).map(|sha| BuildReport {
                promoted_from: Some(sha),
                built: false,
                build_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
                note: None,
            }),
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
