//! The parts of Railway's GraphQL answers hotfix reads, typed. Every field
//! Railway may omit or null is optional; a field hotfix needs and does not
//! get is a malformed answer with its path (`deployments.edges[0].node.id`),
//! never an index into a `Value` that silently reads as nothing.

use serde::Deserialize;
use serde_json::Value;

use super::RailwayDeployment;

/// A Relay connection: `{ edges { node } pageInfo }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Connection<T> {
    pub edges: Vec<Edge<T>>,
    #[serde(default)]
    pub page_info: Option<PageInfo>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Edge<T> {
    pub node: T,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageInfo {
    #[serde(default)]
    pub has_next_page: bool,
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// A `Deployment` as `ServiceDeployments` and `DeploymentById` select it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeploymentNode {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub static_url: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub can_rollback: Option<bool>,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub service_id: Option<String>,
    /// A JSON scalar in the schema (free-form): read by key, leniently.
    #[serde(default)]
    pub meta: Option<Value>,
}

impl From<DeploymentNode> for RailwayDeployment {
    fn from(n: DeploymentNode) -> RailwayDeployment {
        let meta = n.meta.unwrap_or(Value::Null);
        let commit = meta
            .get("commitHash")
            .and_then(Value::as_str)
            .or_else(|| meta.get("commitSha").and_then(Value::as_str))
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        RailwayDeployment {
            id: n.id,
            status: n.status.unwrap_or_else(|| "(none)".to_string()),
            commit,
            url: n
                .static_url
                .filter(|u| !u.is_empty())
                .or(n.url)
                .filter(|u| !u.is_empty()),
            can_rollback: n.can_rollback.unwrap_or(false),
            environment: n.environment_id,
            service: n.service_id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DeploymentsData {
    pub deployments: Connection<DeploymentNode>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeploymentData {
    pub deployment: DeploymentNode,
}

/// An ephemeral (PR) environment.
#[derive(Debug, Deserialize)]
pub(super) struct EnvironmentNode {
    pub id: String,
    #[serde(default)]
    pub meta: Option<EnvironmentMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnvironmentMeta {
    #[serde(default)]
    pub pr_number: Option<u64>,
    #[serde(default)]
    pub pr_repo: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EnvironmentsData {
    pub environments: Connection<EnvironmentNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Domains {
    #[serde(default)]
    pub service_domains: Vec<Domain>,
    #[serde(default)]
    pub custom_domains: Vec<Domain>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Domain {
    #[serde(default)]
    pub domain: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct DomainsData {
    pub domains: Domains,
}

/// `deploymentRollback` answers `Boolean!`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RollbackData {
    pub deployment_rollback: Option<bool>,
}

/// `deploymentRedeploy { id status }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RedeployData {
    pub deployment_redeploy: Option<RedeployNode>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RedeployNode {
    #[serde(default)]
    pub id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reads_its_commit_url_and_flags_leniently() {
        let n: DeploymentNode = serde_json::from_value(serde_json::json!({
            "id": "d1", "status": "SUCCESS", "staticUrl": "", "url": "x.up.railway.app",
            "canRollback": true, "meta": {"commitSha": "abcdef1234"}
        }))
        .expect("node");
        let d = RailwayDeployment::from(n);
        assert_eq!(d.commit.as_deref(), Some("abcdef1234"));
        assert_eq!(d.url.as_deref(), Some("x.up.railway.app"));
        assert!(d.can_rollback);
        let bare: DeploymentNode =
            serde_json::from_value(serde_json::json!({"id": "d2", "meta": "not an object"}))
                .expect("bare");
        let d = RailwayDeployment::from(bare);
        assert_eq!((d.status.as_str(), d.commit, d.url), ("(none)", None, None));
        let e = serde_path_to_error::deserialize::<_, DeploymentsData>(serde_json::json!({
            "deployments": {"edges": [{"node": {"status": "SUCCESS"}}]}
        }))
        .expect_err("no id");
        assert_eq!(e.path().to_string(), "deployments.edges[0].node");
        assert!(e.inner().to_string().contains("`id`"), "{e}");
    }
}
