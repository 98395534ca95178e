//! Build once (issue 13): what the engine knows about reusing the
//! preview's build before a production deploy, and what it records after.
//!
//! The preview built and smoke-tested the hotfix head; the merge commit has
//! another sha but, when main did not move, the very same tree. Trees, not
//! shas, decide whether production may run the tested build. The deployer
//! decides whether it can (the embedded platform promotes; Railway builds
//! main itself; a team's script is told and may); the engine says what it
//! knows in advance, and records in `deployed` what happened, so that the
//! post-mortem can show "production ran the build the preview
//! smoke-tested" as evidence, or why it did not.

use hotfix_core::event::DeployBuild;
use hotfix_core::provider::{BuildReport, DeployCtx, PreviewedBuild};
use hotfix_core::state::IncidentState;

use crate::{Engine, short};

/// What is known before the production deploy about the preview's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No preview passed its smoke checks in this attempt (or no tree could
    /// be read): nothing tested to reuse.
    NoPreview,
    /// The merge's tree equals the previewed tree: the tested build may be
    /// promoted, if the deployer can.
    SameTree { preview: String },
    /// Main moved since the preview: the merge's tree differs, so
    /// production needs a build of its own. `why` says so in words.
    MainMoved { preview: String, why: String },
}

impl Plan {
    /// What the plan means for the build, in words; `None` without a preview.
    pub(crate) fn note(&self) -> Option<String> {
        match self {
            Plan::NoPreview => None,
            Plan::SameTree { preview } => Some(format!(
                "same tree as the preview {}: the tested build may be promoted",
                short(preview)
            )),
            Plan::MainMoved { why, .. } => Some(why.clone()),
        }
    }

    /// The deploy step's title, said before the call.
    pub(crate) fn step_title(&self, merge_sha: &str) -> String {
        let m = short(merge_sha);
        match (self, self.note()) {
            (Plan::MainMoved { .. }, Some(n)) => {
                format!("building and deploying {m} to production ({n})")
            }
            (_, Some(n)) => format!("deploying {m} to production ({n})"),
            (_, None) => format!("deploying {m} to production"),
        }
    }
}

/// The plan from the two trees (pure: the engine reads them from git).
pub(crate) fn plan(
    tree: Option<&str>,
    previewed: Option<&PreviewedBuild>,
    main_moved: impl FnOnce(&PreviewedBuild) -> String,
) -> Plan {
    match (tree, previewed) {
        (Some(t), Some(p)) if t == p.tree => Plan::SameTree {
            preview: p.sha.clone(),
        },
        (Some(_), Some(p)) => Plan::MainMoved {
            preview: p.sha.clone(),
            why: main_moved(p),
        },
        _ => Plan::NoPreview,
    }
}

/// What the `deployed` event records: the provider's report held against
/// the plan. `tested` only when the provider promoted the previewed build
/// and the trees are equal; a provider that says nothing leaves a record
/// only where the engine itself knows something (main moved).
pub(crate) fn record(plan: &Plan, report: Option<&BuildReport>) -> Option<DeployBuild> {
    let (preview, why) = match plan {
        Plan::NoPreview => (None, None),
        Plan::SameTree { preview } => (Some(preview.as_str()), None),
        Plan::MainMoved { preview, why } => (Some(preview.as_str()), Some(why.as_str())),
    };
    let Some(r) = report else {
        return why.map(|w| DeployBuild {
            tested: false,
            built: false,
            from_sha: preview.map(String::from),
            build_ms: None,
            note: Some(w.to_string()),
        });
    };
    let promoted = r
        .promoted_from
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let tested = !r.built
        && matches!(plan, Plan::SameTree { .. })
        && promoted.is_some_and(|p| preview.is_some_and(|pv| names_sha(p, pv)));
    let provider_note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let mut notes: Vec<String> = vec![];
    if let Some(w) = why {
        notes.push(w.to_string());
    }
    if let Some(p) = promoted.filter(|_| !tested) {
        // A promotion the engine cannot vouch for is said, not counted.
        notes.push(format!(
            "the provider promoted the build of {p}, which hotfix cannot vouch for as the one the preview smoke-tested"
        ));
    }
    // The engine's reason names what main gained; the provider's own
    // account (how it built: cold, on a cache) is kept when there is none.
    if let Some(n) = provider_note
        && why.is_none()
    {
        notes.push(n.to_string());
    }
    Some(DeployBuild {
        tested,
        built: r.built,
        from_sha: preview.map(String::from),
        build_ms: r.build_ms,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

/// Whether the provider's `promoted_from` names the previewed sha: the sha
/// itself, its abbreviation, or a release label that carries it
/// (`r12 (3fa4dbfedf…)`).
fn names_sha(promoted: &str, sha: &str) -> bool {
    promoted == sha
        || promoted
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() >= 7 && sha.starts_with(w))
}

/// The step's last line, once the deploy answered.
pub(crate) fn done_line(merge_sha: &str, build: Option<&DeployBuild>) -> String {
    let m = short(merge_sha);
    match build.map(DeployBuild::summary).filter(|s| !s.is_empty()) {
        Some(b) => format!("production runs {m}: {b}"),
        None => format!("production runs {m}"),
    }
}

impl Engine {
    /// The git tree of `sha`, if this clone has the commit.
    pub(crate) fn tree_of(&self, sha: &str) -> Option<String> {
        self.git.tree_of(sha).ok().flatten()
    }

    /// The preview of the current attempt that passed its smoke checks
    /// last, with its tree: what production may reuse.
    pub(crate) fn previewed_build(&self, s: &IncidentState) -> Option<PreviewedBuild> {
        let (sha, passed, _) = s.smoke.as_ref()?;
        if !*passed || s.preview_sha.as_deref() != Some(sha.as_str()) {
            return None;
        }
        Some(PreviewedBuild {
            sha: sha.clone(),
            tree: self.tree_of(sha)?,
        })
    }

    /// The context of a production deploy (or a canary start) of
    /// `merge_sha`: its tree and the previewed build, and the plan.
    pub(crate) fn production_ctx(&self, s: &IncidentState, merge_sha: &str) -> (DeployCtx, Plan) {
        let mut ctx = self.deploy_ctx(s, merge_sha);
        ctx.previewed = self.previewed_build(s);
        let plan = plan(ctx.tree.as_deref(), ctx.previewed.as_ref(), |p| {
            self.main_moved(s, merge_sha, &p.sha)
        });
        (ctx, plan)
    }

    /// "main moved since the preview: …" with what main gained that the
    /// preview did not have, as far as git can tell.
    fn main_moved(&self, s: &IncidentState, merge_sha: &str, preview: &str) -> String {
        let main = &self.cfg.git.main;
        let first = s
            .previous_main
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| self.git.rev_parse(&format!("{merge_sha}^1")).ok().flatten());
        let gained = first
            .and_then(|m| self.git.commits(preview, &m).ok())
            .unwrap_or_default();
        let what = match gained.as_slice() {
            [] => String::new(),
            [c] => format!(": {main} gained {} ({})", short(&c.sha), c.subject),
            [c, rest @ ..] => format!(
                ": {main} gained {} commits ({} {}, and {} more)",
                gained.len(),
                short(&c.sha),
                c.subject,
                rest.len()
            ),
        };
        format!(
            "{main} moved since the preview of {}{what}; the merge's tree differs from the tested one",
            short(preview)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(sha: &str, tree: &str) -> PreviewedBuild {
        PreviewedBuild {
            sha: sha.repeat(40),
            tree: tree.repeat(40),
        }
    }

    #[test]
    fn equal_trees_may_promote_and_a_promotion_of_the_preview_is_the_tested_build() {
        let p = pv("b", "t");
        let plan = plan(Some(&"t".repeat(40)), Some(&p), |_| unreachable!());
        assert_eq!(
            plan,
            Plan::SameTree {
                preview: "b".repeat(40)
            }
        );
        assert!(plan.step_title(&"c".repeat(40)).contains("may be promoted"));
        let r = BuildReport {
            promoted_from: Some("b".repeat(40)),
            built: false,
            build_ms: Some(30),
            note: None,
        };
        let b = record(&plan, Some(&r)).unwrap_or_default();
        assert!(b.tested && !b.built, "{b:?}");
        assert_eq!(b.from_sha, Some("b".repeat(40)));
        // A release label that carries the sha names it too.
        let r = BuildReport {
            promoted_from: Some(format!("r12 ({})", "b".repeat(12))),
            ..r
        };
        assert!(record(&plan, Some(&r)).is_some_and(|b| b.tested));
        // The provider built anyway (Railway): honest, not tested.
        let railway = BuildReport {
            promoted_from: None,
            built: true,
            build_ms: None,
            note: Some("Railway still builds main itself".into()),
        };
        let b = record(&plan, Some(&railway)).unwrap_or_default();
        assert!(!b.tested && b.built);
        assert_eq!(b.note.as_deref(), Some("Railway still builds main itself"));
        // No report: nothing to record.
        assert_eq!(record(&plan, None), None);
    }

    #[test]
    fn when_main_moved_the_deploy_builds_and_says_why() {
        let p = pv("b", "t");
        let plan = plan(Some(&"u".repeat(40)), Some(&p), |p| {
            format!("main moved since the preview of {}", short(&p.sha))
        });
        assert!(matches!(plan, Plan::MainMoved { .. }));
        assert!(
            plan.step_title(&"c".repeat(40))
                .starts_with("building and deploying")
        );
        let r = BuildReport {
            promoted_from: None,
            built: true,
            build_ms: Some(65_000),
            note: Some("main moved: tree differs".into()),
        };
        let b = record(&plan, Some(&r)).unwrap_or_default();
        assert!(!b.tested && b.built);
        assert_eq!(
            b.summary(),
            "built in 1m05s: main moved since the preview of bbbbbbbbbb"
        );
        // A provider claiming a promotion across different trees is not believed.
        let r = BuildReport {
            promoted_from: Some("b".repeat(40)),
            built: false,
            build_ms: None,
            note: None,
        };
        let b = record(&plan, Some(&r)).unwrap_or_default();
        assert!(!b.tested);
        // A provider that says nothing: the engine's reason is still recorded.
        let b = record(&plan, None).unwrap_or_default();
        assert!(!b.tested && !b.built);
        assert!(b.note.unwrap_or_default().starts_with("main moved"));
        // Without a previewed build there is nothing to compare.
        assert_eq!(
            super::plan(Some("t"), None, |_| unreachable!()),
            Plan::NoPreview
        );
    }
}
