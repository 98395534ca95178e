//! Previews: one release per key (`HF-3`) on its own port with its own data,
//! replaced by a redeploy of the key; a removed preview's build is kept (up to
//! [`KEEP_BUILDS`]) so the production deploy of the merge
//! can promote it. Serialised by `preview_lock`, never by `prod_lock`, so a
//! slow preview build never delays a rollback.

use std::sync::Arc;

use crate::types::{BuildHow, DeployMeta, PreviewInfo, ReleaseKind, ReleaseSettings, ReleaseState};
use crate::{PlatformError, git};

use super::{Inner, KEEP_BUILDS, Release, lock};

impl Inner {
    pub async fn deploy_preview(
        self: &Arc<Self>,
        key: &str,
        rev: &str,
        settings: Option<&ReleaseSettings>,
        meta: DeployMeta,
    ) -> Result<PreviewInfo, PlatformError> {
        check_key(key)?;
        self.check_running()?;
        let cfg = self.config_for(settings)?;
        let sha = git::resolve_commit(&self.cfg.repo_root, rev).await?;
        let _g = self.preview_lock.lock().await;
        self.check_running()?;
        if let Some(p) = lock(&self.state).previews.get(key)
            && p.info().sha == sha
            && p.running()
            && p.info().state == ReleaseState::Live
        {
            self.adopt(&cfg);
            return Ok(preview_info(key, p));
        }
        let rel = self.new_release(ReleaseKind::Preview, Some(key), &sha, cfg.clone(), meta);
        if let Err(e) = self.launch(&rel).await {
            self.discard(&rel).await;
            self.persist_now();
            return Err(e);
        }
        rel.set(|i| i.state = ReleaseState::Live);
        self.adopt(&cfg);
        let old = {
            let mut st = lock(&self.state);
            let old = st.previews.insert(key.to_string(), rel.clone());
            self.persist(&st);
            old
        };
        if let Some(old) = old {
            self.discard(&old).await;
        }
        eprintln!(
            "hotfix platform: preview {key} is {} ({sha})",
            rel.info().id
        );
        Ok(preview_info(key, &rel))
    }

    pub async fn remove_preview(self: &Arc<Self>, key: &str) -> Result<(), PlatformError> {
        check_key(key)?;
        let _g = self.preview_lock.lock().await;
        let old = {
            let mut st = lock(&self.state);
            let old = st.previews.remove(key);
            self.persist(&st);
            old
        };
        match old {
            Some(old) => {
                self.keep_build(old).await;
                Ok(())
            }
            None => Err(PlatformError::NotFound(format!(
                "there is no preview `{key}`"
            ))),
        }
    }

    /// A removed preview: its process stops and its data goes, but a
    /// finished build stays (not running) among the kept builds, so the
    /// production deploy of the merge that follows can promote it; the
    /// oldest beyond [`KEEP_BUILDS`] are discarded.
    async fn keep_build(self: &Arc<Self>, rel: Arc<Release>) {
        let keep = rel.info().build.is_some_and(|b| b.how != BuildHow::None)
            && rel.info().state != ReleaseState::Crashed;
        if !keep {
            self.discard(&rel).await;
            return;
        }
        self.stop_process(&rel).await;
        let _ = tokio::fs::remove_dir_all(&rel.info().data_dir).await;
        rel.set(|i| {
            i.state = ReleaseState::Cold;
            i.warm_until = None;
        });
        let evicted: Vec<Arc<Release>> = {
            let mut st = lock(&self.state);
            st.kept.push_front(rel);
            let at = KEEP_BUILDS.min(st.kept.len());
            let out = st.kept.split_off(at);
            self.persist(&st);
            out.into_iter().collect()
        };
        for old in evicted {
            self.discard(&old).await;
        }
    }
}

pub(super) fn preview_info(key: &str, rel: &Release) -> PreviewInfo {
    let release = rel.info();
    PreviewInfo {
        key: key.to_string(),
        url: format!("http://127.0.0.1:{}", release.port),
        release,
    }
}

/// Preview keys name directories and URLs: `HF-3`, `pr-12`, `hotfix_pdf`.
fn check_key(key: &str) -> Result<(), PlatformError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && !key.starts_with(['.', '-'])
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PlatformError::Invalid(format!(
            "preview key `{key}` must be 1-64 letters, digits, `-`, `_` or `.` (e.g. HF-3)"
        )))
    }
}
