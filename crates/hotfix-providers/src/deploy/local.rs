//! The `local` deployer: the embedded hosting platform (`hotfix platform`).
//! Previews are keyed by incident; production is the platform's stable port;
//! a rollback is a switch of its proxy back to the still-warm previous release.

use std::path::PathBuf;

use hotfix_core::config::DeployConfig;
use hotfix_core::provider::{DeployCtx, DeployError, Deployer, Deployment};
use hotfix_platform::{Client, PlatformConfig, PlatformError};

pub struct LocalDeployer {
    pub platform: PlatformConfig,
    /// When set, a platform that is not running is started in the background
    /// with `exe args…` (the `hotfix` binary itself).
    pub autostart: Option<(PathBuf, Vec<String>)>,
}

fn err(e: PlatformError) -> DeployError {
    match e {
        PlatformError::NotRunning { .. } => {
            DeployError::Unreachable(format!("{e}\n  start it with `hotfix platform start`"))
        }
        other => DeployError::Failed(other.to_string()),
    }
}

impl LocalDeployer {
    /// Reads the platform settings from the `[deploy]` table.
    pub fn from_config(
        repo_root: &std::path::Path,
        state_dir: PathBuf,
        deploy: &DeployConfig,
    ) -> Result<LocalDeployer, DeployError> {
        let table = toml::Table::try_from(deploy)
            .map_err(|e| DeployError::Failed(format!("[deploy]: {e}")))?;
        let platform = PlatformConfig::from_deploy_table(repo_root, Some(state_dir), &table)
            .map_err(|e| DeployError::Failed(e.to_string()))?;
        Ok(LocalDeployer {
            platform,
            autostart: None,
        })
    }

    fn client(&self) -> Result<Client, DeployError> {
        let dir = &self.platform.state_dir;
        if !hotfix_platform::is_running(dir) {
            match &self.autostart {
                Some((exe, args)) => {
                    hotfix_platform::start_background(&self.platform, exe, args).map_err(err)?;
                }
                None => {
                    return Err(err(PlatformError::NotRunning {
                        state_dir: dir.clone(),
                        detail: "no platform is running".into(),
                    }));
                }
            }
        }
        Client::connect(dir).map_err(err)
    }
}

impl Deployer for LocalDeployer {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let p = self
            .client()?
            .deploy_preview(&ctx.incident.to_string(), &ctx.sha)
            .map_err(err)?;
        Ok(Deployment {
            id: Some(p.release.id.clone()),
            url: Some(p.url),
        })
    }

    fn remove_preview(&self, ctx: &DeployCtx) -> Result<(), DeployError> {
        match self.client()?.remove_preview(&ctx.incident.to_string()) {
            Ok(()) => Ok(()),
            Err(PlatformError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let o = self.client()?.deploy_production(&ctx.sha).map_err(err)?;
        Ok(Deployment {
            id: Some(o.release.id.clone()),
            url: Some(o.url),
        })
    }

    fn rollback(&self, ctx: &DeployCtx, _previous: Option<&str>) -> Result<(), DeployError> {
        let c = self.client()?;
        // Idempotent: already serving the code to roll back to?
        if let Ok(st) = c.status()
            && st.production.as_ref().is_some_and(|r| r.sha == ctx.sha)
        {
            return Ok(());
        }
        c.rollback(Some(&ctx.sha)).map_err(err).map(drop)
    }

    fn health_url(&self) -> Option<String> {
        Some(format!(
            "http://{}:{}{}",
            self.platform.host, self.platform.port, self.platform.health_path
        ))
    }
}
