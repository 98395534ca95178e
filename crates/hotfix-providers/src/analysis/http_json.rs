//! `provider = "http-json"`: `GET url`, then the number an RFC 6901
//! pointer names in the JSON answer (a number, or a string holding one, as
//! many stats endpoints write them). `null` is no data; a pointer that
//! names nothing is a bad answer (most likely a typo in the pointer, which
//! "no data" would hide).

use std::time::Duration;

use hotfix_core::analysis::Measurement;

use super::{AnalysisError, BODY_LIMIT, MeasureContext, MetricSource, excerpt, parse_number};

#[derive(Debug, Clone)]
pub struct HttpJson {
    pub url: String,
    /// RFC 6901: `/data/value`, `""` = the whole document.
    pub pointer: String,
    pub timeout: Duration,
}

impl MetricSource for HttpJson {
    fn measure(&self, _cx: &MeasureContext) -> Result<Measurement, AnalysisError> {
        let who = self.url.as_str();
        let mut resp = super::agent(self.timeout)
            .get(&self.url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| super::unreachable(who, &e, self.timeout))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| super::unreachable(who, &e, self.timeout))?;
        if !(200..300).contains(&status) {
            return Err(AnalysisError::BadAnswer(format!(
                "{who} answered {status}: {}",
                excerpt(&body, 160)
            )));
        }
        let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            AnalysisError::BadAnswer(format!(
                "{who} answered something that is not JSON ({e}): {}",
                excerpt(&body, 160)
            ))
        })?;
        let value = value_at(&doc, &self.pointer)
            .map_err(|why| AnalysisError::BadAnswer(format!("{who}: {why}")))?;
        Ok(Measurement {
            value,
            baseline: None,
            controlled: None,
        })
    }
}

/// The number at `pointer`: `Ok(None)` for `null` (or NaN), an error that
/// names the pointer for anything else that is not a number.
pub fn value_at(doc: &serde_json::Value, pointer: &str) -> Result<Option<f64>, String> {
    let v = doc
        .pointer(pointer)
        .ok_or_else(|| format!("no value at `{pointer}`"))?;
    let n = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("`{n}` at `{pointer}` is not a number"))?,
        serde_json::Value::String(s) => {
            parse_number(s).ok_or_else(|| format!("`{s}` at `{pointer}` is not a number"))?
        }
        other => {
            return Err(format!(
                "`{}` at `{pointer}` is not a number",
                excerpt(&other.to_string(), 80)
            ));
        }
    };
    Ok((!n.is_nan()).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::value_at;
    use serde_json::json;

    #[test]
    fn numbers_numeric_strings_and_null() {
        let doc = json!({"data": {"v": 0.5, "s": "12.5", "n": null, "o": {"x": 1}, "a": [3]}});
        assert_eq!(value_at(&doc, "/data/v"), Ok(Some(0.5)));
        assert_eq!(value_at(&doc, "/data/s"), Ok(Some(12.5)));
        assert_eq!(value_at(&doc, "/data/a/0"), Ok(Some(3.0)));
        assert_eq!(value_at(&doc, "/data/n"), Ok(None));
        assert_eq!(value_at(&json!(7), ""), Ok(Some(7.0)));
        assert_eq!(
            value_at(&doc, "/data/missing"),
            Err("no value at `/data/missing`".into())
        );
        assert_eq!(
            value_at(&doc, "/data/o"),
            Err("`{\"x\":1}` at `/data/o` is not a number".into())
        );
    }
}
