//! `provider = "prometheus"`: an instant PromQL query against the HTTP API
//! (`GET /api/v1/query?query=…&time=…`).
//!
//! The value is the query evaluated at the measurement's `now`; the query
//! itself says over which range (`rate(x[1m])`). With `baseline =
//! "before"` the same query is evaluated at `time = deployed_at`: every
//! range in it then ends at the deploy moment, so it measures the window
//! just before the new release served. One series (or a scalar) is a
//! number; an empty vector is no data; more than one series is an answer
//! the query must aggregate (`sum(...)`) first.

use std::time::Duration;

use hotfix_core::analysis::Measurement;
use serde::Deserialize;

use super::{AnalysisError, BODY_LIMIT, MeasureContext, MetricSource, excerpt, parse_number};

/// One configured query.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// `http://host:9090`, without a trailing slash.
    pub address: String,
    pub query: String,
    /// Also evaluate the query at the deploy moment.
    pub baseline_before: bool,
    pub timeout: Duration,
}

/// The documented envelope of every API answer.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// `[unix seconds, "value"]`.
#[derive(Debug, Deserialize)]
struct Sample(#[allow(dead_code)] serde_json::Value, String);

#[derive(Debug, Deserialize)]
struct Series {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: Sample,
}

impl Prometheus {
    fn who(&self) -> String {
        format!("Prometheus at {}", self.address)
    }

    /// The query's value at `at`: `None` = the query selects nothing (or NaN).
    pub fn query_at(&self, at: jiff::Timestamp) -> Result<Option<f64>, AnalysisError> {
        let url = format!("{}/api/v1/query", self.address);
        let time = format!("{:.3}", at.as_millisecond() as f64 / 1000.0);
        let mut resp = super::agent(self.timeout)
            .get(&url)
            .query("query", &self.query)
            .query("time", &time)
            .call()
            .map_err(|e| super::unreachable(&self.who(), &e, self.timeout))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| super::unreachable(&self.who(), &e, self.timeout))?;
        let env: Envelope = serde_json::from_str(&body).map_err(|_| {
            AnalysisError::BadAnswer(format!(
                "{} answered {status} with something that is not the Prometheus API: {}",
                self.who(),
                excerpt(&body, 160)
            ))
        })?;
        if env.status != "success" {
            return Err(AnalysisError::Query(format!(
                "{} refused the query `{}`: {} ({})",
                self.who(),
                self.query,
                env.error.as_deref().unwrap_or("no error text"),
                env.error_type.as_deref().unwrap_or("error")
            )));
        }
        let data = env.data.ok_or_else(|| {
            AnalysisError::BadAnswer(format!("{} answered success without data", self.who()))
        })?;
        let bad = |what: String| AnalysisError::BadAnswer(format!("{}: {what}", self.who()));
        let value = match data.result_type.as_str() {
            "scalar" => {
                let s: Sample = serde_json::from_value(data.result)
                    .map_err(|e| bad(format!("a scalar that is not [time, value]: {e}")))?;
                parse_number(&s.1).ok_or_else(|| bad(format!("`{}` is not a number", s.1)))?
            }
            "vector" => {
                let series: Vec<Series> = serde_json::from_value(data.result)
                    .map_err(|e| bad(format!("a vector that is not a list of series: {e}")))?;
                match series.as_slice() {
                    [] => return Ok(None),
                    [one] => parse_number(&one.value.1)
                        .ok_or_else(|| bad(format!("`{}` is not a number", one.value.1)))?,
                    many => {
                        let first = labels(&many[0].metric);
                        return Err(bad(format!(
                            "the query `{}` returns {} series (first: {first}); one number is needed: aggregate it, e.g. sum(...)",
                            self.query,
                            many.len()
                        )));
                    }
                }
            }
            "matrix" => {
                return Err(bad(format!(
                    "the query `{}` returns a range vector; an instant value is needed, e.g. rate(...[1m]) instead of ...[1m]",
                    self.query
                )));
            }
            other => {
                return Err(bad(format!(
                    "the query `{}` returns a {other}, not a number",
                    self.query
                )));
            }
        };
        Ok((!value.is_nan()).then_some(value))
    }
}

/// `{job="api",code="500"}`.
fn labels(m: &serde_json::Map<String, serde_json::Value>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or(v.to_string(), |s| format!("{s:?}"))
            )
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

impl MetricSource for Prometheus {
    fn measure(&self, cx: &MeasureContext) -> Result<Measurement, AnalysisError> {
        let value = self.query_at(cx.now)?;
        let baseline = if self.baseline_before {
            self.query_at(cx.deployed_at)?
        } else {
            None
        };
        Ok(Measurement {
            value,
            baseline,
            controlled: None,
        })
    }
}
