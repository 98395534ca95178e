//! The `local` deployer: the embedded hosting platform (`hotfix platform`).
//! Previews are keyed by incident; production is the platform's stable port;
//! a rollback is a switch of its proxy back to the still-warm previous release.
//!
//! Every request carries the release settings of `hotfix.toml` as they are
//! now (build, run, health path, timeouts), so an edit applies to the next
//! deploy although the platform runs in the background since long before.
//! Where production listens cannot change that way: a platform on another
//! port than the config says is restarted when it runs nothing, and a
//! production deploy is refused with the restart command otherwise.

use std::path::{Path, PathBuf};

use hotfix_core::config::DeployConfig;
use hotfix_core::provider::{
    BuildReport, DeployAction, DeployCtx, DeployError, Deployer, Deployment,
};
use hotfix_platform::{
    BuildHow, CanaryRequest, Client, DeployMeta, DeployOutcome, DeployRequest, DeployVia,
    PlatformConfig, PlatformError, PlatformStatus, PreviewedHint, ReleaseInfo, ReleaseKind,
    RollbackRequest,
};

pub struct LocalDeployer {
    pub platform: PlatformConfig,
    /// When set, a platform that is not running is started in the background
    /// with `exe args…` (the `hotfix` binary itself).
    pub autostart: Option<(PathBuf, Vec<String>)>,
}

fn err(e: PlatformError) -> DeployError {
    match e {
        // Its message names `hotfix platform start` already.
        PlatformError::NotRunning { .. } => DeployError::Unreachable(e.to_string()),
        other => DeployError::Failed(other.to_string()),
    }
}

/// How the platform says a release got its build, as the engine records
/// it (`deployed` event, status, post-mortem): promoted from the tested
/// build (no build ran), or built (cold or on a cache), and why it was not
/// promoted.
pub fn build_report(release: &ReleaseInfo) -> Option<BuildReport> {
    let b = release.build.as_ref()?;
    let promoted = b.how == BuildHow::Promoted;
    Some(BuildReport {
        promoted_from: if promoted { b.from_sha.clone() } else { None },
        built: matches!(b.how, BuildHow::Cold | BuildHow::Cached),
        build_ms: Some(b.ms),
        note: Some(match &b.note {
            Some(n) => format!("{}: {n}", b.describe()),
            None if promoted => format!("{}: same tree, no build ran", b.describe()),
            None => b.describe(),
        }),
    })
}

/// Whether the platform runs nothing a restart would interrupt.
fn idle(st: &PlatformStatus) -> bool {
    st.production.is_none()
        && st.canary.is_none()
        && st.previous.is_none()
        && st.previews.is_empty()
        && st.starting.is_empty()
}

/// What a request should do when the running platform serves production
/// elsewhere than the config says.
#[derive(Debug, PartialEq, Eq)]
enum Moved {
    /// Same address (or the config lets the platform pick one).
    No,
    /// Another address, and nothing runs: restart it on the new one.
    Restart,
    /// Another address, with releases running: the person decides.
    Refuse(String),
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

    /// A client of the running platform, started first if allowed.
    fn running(&self) -> Result<Client, DeployError> {
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

    /// A client of a platform that serves production where `hotfix.toml`
    /// says: an idle platform on another port is restarted (it holds
    /// nothing), a busy one is refused with the command that moves it.
    fn client(&self) -> Result<Client, DeployError> {
        let c = self.running()?;
        let st = c.status().map_err(err)?;
        match self.moved(&st) {
            Moved::No => Ok(c),
            Moved::Refuse(why) => Err(DeployError::Failed(why)),
            Moved::Restart => match &self.autostart {
                Some(_) => {
                    hotfix_platform::stop(&self.platform.state_dir).map_err(err)?;
                    self.running()
                }
                None => Err(DeployError::Failed(self.restart_needed(&st))),
            },
        }
    }

    fn moved(&self, st: &PlatformStatus) -> Moved {
        match self.platform.production_url() {
            Some(want) if want != st.url => {
                if idle(st) {
                    Moved::Restart
                } else {
                    Moved::Refuse(self.restart_needed(st))
                }
            }
            _ => Moved::No,
        }
    }

    fn restart_needed(&self, st: &PlatformStatus) -> String {
        format!(
            "the running platform (pid {}) serves production at {}, but hotfix.toml [deploy] now says {}: \
             where production listens changes only with a restart (production, the warm previous release \
             and the previews come back on their own): `hotfix platform stop && hotfix platform start`",
            st.pid,
            st.url,
            self.platform.production_url().unwrap_or_default()
        )
    }

    /// The settings and provenance a request of the hotfix workflow
    /// carries, and the build the preview tested (the platform compares
    /// trees itself, so `ctx.tree` is not sent: it reads `sha^{tree}`).
    fn request(&self, ctx: &DeployCtx) -> DeployRequest {
        DeployRequest {
            sha: ctx.sha.clone(),
            settings: Some(self.platform.settings()),
            meta: DeployMeta {
                via: DeployVia::Incident,
                incident: Some(ctx.incident.to_string()),
                ..DeployMeta::default()
            },
            previewed: ctx.previewed.as_ref().map(|p| PreviewedHint {
                sha: p.sha.clone(),
                tree: p.tree.clone(),
            }),
        }
    }

    /// Puts `sha` into production by hand (`hotfix platform deploy`):
    /// built, started and health-checked like a hotfix's deploy (production
    /// stays where it was if that fails), recorded as a manual deploy by
    /// `by` of `reference` in the platform's history.
    pub fn deploy_manual(
        &self,
        sha: &str,
        reference: Option<&str>,
        by: &str,
    ) -> Result<DeployOutcome, DeployError> {
        let req = DeployRequest {
            sha: sha.to_string(),
            settings: Some(self.platform.settings()),
            meta: DeployMeta {
                via: DeployVia::Manual,
                by: Some(by.to_string()),
                reference: reference.map(str::to_string),
                incident: None,
            },
            previewed: None,
        };
        self.client()?.deploy_production_with(&req).map_err(err)
    }

    /// What runs where, starting the platform first if allowed.
    pub fn status(&self) -> Result<PlatformStatus, DeployError> {
        self.running()?.status().map_err(err)
    }

    /// The log a production deploy of `sha` writes to (named before it starts).
    pub fn production_log(&self, sha: &str) -> PathBuf {
        hotfix_platform::release_log(&self.platform.state_dir, ReleaseKind::Production, None, sha)
    }

    fn state_dir(&self) -> &Path {
        &self.platform.state_dir
    }
}

impl Deployer for LocalDeployer {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        // Previews have their own ports: a production port that moved does
        // not concern them, so a busy platform on the old one still serves
        // them (only an idle one is restarted).
        let c = match self.client() {
            Err(DeployError::Failed(_)) => self.running()?,
            other => other?,
        };
        let p = c
            .deploy_preview_with(&ctx.incident.to_string(), &self.request(ctx))
            .map_err(err)?;
        Ok(Deployment {
            id: Some(p.release.id.clone()),
            build: build_report(&p.release),
            url: Some(p.url),
        })
    }

    fn remove_preview(&self, ctx: &DeployCtx) -> Result<(), DeployError> {
        match self.running()?.remove_preview(&ctx.incident.to_string()) {
            Ok(()) | Err(PlatformError::NotFound(_)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let o = self
            .client()?
            .deploy_production_with(&self.request(ctx))
            .map_err(err)?;
        Ok(Deployment {
            id: Some(o.release.id.clone()),
            build: build_report(&o.release),
            url: Some(o.url),
        })
    }

    fn rollback(&self, ctx: &DeployCtx, _previous: Option<&str>) -> Result<(), DeployError> {
        // Never refused over a moved port: getting production back comes first.
        let c = self.running()?;
        // A canary of the code rolled back is stopped first (0% at once),
        // even when production already runs the code to go back to.
        let st = c.status().ok();
        if st.as_ref().is_some_and(|s| s.canary.is_some()) {
            c.canary_abort().map_err(err)?;
        }
        // Idempotent: already serving the code to roll back to?
        if st
            .as_ref()
            .and_then(|s| s.production.as_ref())
            .is_some_and(|r| r.sha == ctx.sha)
        {
            return Ok(());
        }
        let req = self.request(ctx);
        c.rollback_with(&RollbackRequest {
            to_sha: Some(req.sha),
            settings: req.settings,
            meta: req.meta,
        })
        .map_err(err)
        .map(drop)
    }

    fn canary_start(&self, ctx: &DeployCtx, weight: f64) -> Result<Deployment, DeployError> {
        let req = self.request(ctx);
        let o = self
            .client()?
            .canary_start(&CanaryRequest {
                sha: req.sha,
                weight,
                settings: req.settings,
                meta: req.meta,
                previewed: req.previewed,
            })
            .map_err(err)?;
        Ok(Deployment {
            build: o.canary.as_ref().and_then(|c| build_report(&c.release)),
            id: o.canary.map(|c| c.release.id),
            url: Some(o.url),
        })
    }

    fn canary_weight(&self, weight: f64) -> Result<(), DeployError> {
        self.running()?.canary_weight(weight).map_err(err).map(drop)
    }

    fn canary_promote(&self) -> Result<Deployment, DeployError> {
        let o = self.running()?.canary_promote(None).map_err(err)?;
        Ok(Deployment {
            build: build_report(&o.release),
            id: Some(o.release.id),
            url: Some(o.url),
        })
    }

    fn canary_abort(&self) -> Result<(), DeployError> {
        // Never refused over a moved port, like a rollback.
        self.running()?.canary_abort().map_err(err).map(drop)
    }

    fn health_url(&self) -> Option<String> {
        // `port = 0` lets the platform pick: ask the running one where.
        let base = match self.platform.production_url() {
            Some(u) => u,
            None => hotfix_platform::read_control(self.state_dir())
                .map(|c| format!("http://127.0.0.1:{}", c.proxy_port))
                .ok()?,
        };
        Some(format!("{base}{}", self.platform.health_path))
    }

    /// The release's log: named by target and commit, so it is known
    /// before the platform starts the build (see `hotfix_platform::release_log`).
    fn log_path(&self, ctx: &DeployCtx, action: DeployAction) -> Option<PathBuf> {
        let dir = &self.platform.state_dir;
        Some(match action {
            DeployAction::Preview => hotfix_platform::release_log(
                dir,
                ReleaseKind::Preview,
                Some(&ctx.incident.to_string()),
                &ctx.sha,
            ),
            DeployAction::Production | DeployAction::Rollback => self.production_log(&ctx.sha),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(url: &str, busy: bool) -> PlatformStatus {
        let json = serde_json::json!({
            "pid": 1, "url": url, "port": 1, "recovering": false,
            "production": null, "previous": null, "previews": [], "crashed": [],
        });
        let mut st: PlatformStatus = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        if busy {
            st.starting.push(
                serde_json::from_value(serde_json::json!({
                    "id": "r1-abc", "sha": "abc", "kind": "production", "port": 2,
                    "started_at": "", "state": "starting", "worktree": "/w",
                    "data_dir": "/d", "log_path": "/l"
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        st
    }

    #[test]
    fn a_moved_port_restarts_an_idle_platform_and_refuses_a_busy_one() {
        let mut cfg = PlatformConfig::new("/r", "/s", vec!["app".into()]);
        cfg.port = 9000;
        let d = LocalDeployer {
            platform: cfg,
            autostart: None,
        };
        assert_eq!(d.moved(&status("http://127.0.0.1:9000", true)), Moved::No);
        assert_eq!(
            d.moved(&status("http://127.0.0.1:8080", false)),
            Moved::Restart
        );
        match d.moved(&status("http://127.0.0.1:8080", true)) {
            Moved::Refuse(m) => assert!(
                m.contains("http://127.0.0.1:8080")
                    && m.contains("http://127.0.0.1:9000")
                    && m.contains("`hotfix platform stop && hotfix platform start`"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
