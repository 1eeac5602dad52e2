//! Listing with UFDL's filter specification: `expressions` applied in sequence (all must hold) of
//! type `exact`, `contains` (`value`, or `sub_string` as UFDL's own example writes it), `is_null`,
//! `compare` (`<`, `>`, `<=`, `>=`), and `and`/`or` with `sub_expressions`; each with
//! `case_insensitive` and `invert`; `order_by` with `ascending` and `nulls_first`;
//! `include_inactive`. On a whitelist of fields (an unknown field is refused), evaluated on the
//! entries themselves: no SQL is ever built from it.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::compat::Version;
use crate::{CoreError, Result};

/// A field's value as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FilterSpec {
    #[serde(default)]
    pub expressions: Vec<Expr>,
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    #[serde(default)]
    pub include_inactive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Expr {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    #[serde(default)]
    pub sub_string: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub sub_expressions: Vec<Expr>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderBy {
    pub field: String,
    #[serde(default = "yes")]
    pub ascending: bool,
    #[serde(default)]
    pub nulls_first: bool,
}

fn yes() -> bool {
    true
}

fn bad(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        what: "filter".into(),
        reason: reason.into(),
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fold(s: &str, ci: bool) -> String {
    if ci {
        s.to_lowercase()
    } else {
        s.to_string()
    }
}

/// Orders two values: numbers as numbers, version-like strings as versions, else text.
fn order(a: &Field, b: &Field) -> Option<Ordering> {
    match (a, b) {
        (Field::Num(x), Field::Num(y)) => x.partial_cmp(y),
        (Field::Bool(x), Field::Bool(y)) => Some(x.cmp(y)),
        (Field::Str(x), Field::Str(y)) => match (Version::parse(x), Version::parse(y)) {
            (Some(vx), Some(vy)) => Some(vx.cmp_num(&vy)),
            _ => Some(x.cmp(y)),
        },
        _ => None,
    }
}

fn as_field(v: &serde_json::Value) -> Field {
    match v {
        serde_json::Value::Null => Field::Null,
        serde_json::Value::Bool(b) => Field::Bool(*b),
        serde_json::Value::Number(n) => Field::Num(n.as_f64().unwrap_or(0.0)),
        other => Field::Str(text(other)),
    }
}

impl FilterSpec {
    pub fn parse(json: &str) -> Result<FilterSpec> {
        serde_json::from_str(json)
            .map_err(|e| bad(format!("it is not a filter specification: {e}")))
    }

    /// Checks every field and type before anything is listed.
    pub fn validate(&self, fields: &[&str]) -> Result<()> {
        fn walk(e: &Expr, fields: &[&str]) -> Result<()> {
            match e.kind.as_str() {
                "and" | "or" => {
                    if e.sub_expressions.is_empty() {
                        return Err(bad(format!("\"{}\" needs sub_expressions", e.kind)));
                    }
                    if e.kind == "and" && e.sub_expressions.iter().any(|s| s.kind == "or") {
                        return Err(bad("an \"and\" cannot contain an \"or\" (UFDL's filter specification): put the \"or\" at the top level, with an \"and\" in each of its sub_expressions"));
                    }
                    e.sub_expressions.iter().try_for_each(|s| walk(s, fields))
                }
                "exact" | "contains" | "is_null" | "compare" => {
                    let f = e.field.as_deref().ok_or_else(|| bad(format!("\"{}\" needs a field", e.kind)))?;
                    if !fields.contains(&f) {
                        return Err(bad(format!("\"{f}\" is not a field one can filter on (fields: {})", fields.join(", "))));
                    }
                    match e.kind.as_str() {
                        "exact" if e.value.is_none() => Err(bad("\"exact\" needs a value")),
                        "contains" if e.value.is_none() && e.sub_string.is_none() => Err(bad("\"contains\" needs a value (or sub_string)")),
                        "compare" => match (e.operator.as_deref(), &e.value) {
                            (Some("<" | ">" | "<=" | ">="), Some(_)) => Ok(()),
                            (Some(op), Some(_)) => Err(bad(format!("\"{op}\" is not a comparison (<, >, <=, >=)"))),
                            _ => Err(bad("\"compare\" needs an operator and a value")),
                        },
                        _ => Ok(()),
                    }
                }
                other => Err(bad(format!("\"{other}\" is not an expression type (exact, contains, is_null, compare, and, or)"))),
            }
        }
        self.expressions.iter().try_for_each(|e| walk(e, fields))?;
        for o in &self.order_by {
            if !fields.contains(&o.field.as_str()) {
                return Err(bad(format!(
                    "\"{}\" is not a field one can order by",
                    o.field
                )));
            }
        }
        Ok(())
    }

    /// Whether an item passes every expression. `get` gives a field's value.
    pub fn matches(&self, get: &dyn Fn(&str) -> Field) -> bool {
        self.expressions.iter().all(|e| eval(e, get))
    }

    /// Orders items by `order_by` (stable), with `get_of(i, field)`.
    pub fn sort<T>(&self, items: &mut [T], get: &dyn Fn(&T, &str) -> Field) {
        items.sort_by(|a, b| {
            for o in &self.order_by {
                let (x, y) = (get(a, &o.field), get(b, &o.field));
                let c = match (&x, &y) {
                    (Field::Null, Field::Null) => Ordering::Equal,
                    (Field::Null, _) => {
                        if o.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (_, Field::Null) => {
                        if o.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ => {
                        let c = order(&x, &y).unwrap_or(Ordering::Equal);
                        if o.ascending {
                            c
                        } else {
                            c.reverse()
                        }
                    }
                };
                if c.is_ne() {
                    return c;
                }
            }
            Ordering::Equal
        });
    }
}

fn eval(e: &Expr, get: &dyn Fn(&str) -> Field) -> bool {
    let ci = e.case_insensitive;
    let r = match e.kind.as_str() {
        "and" => e.sub_expressions.iter().all(|s| eval(s, get)),
        "or" => e.sub_expressions.iter().any(|s| eval(s, get)),
        _ => {
            let f = get(e.field.as_deref().unwrap_or_default());
            match e.kind.as_str() {
                "is_null" => {
                    matches!(f, Field::Null) || matches!(&f, Field::Str(s) if s.is_empty())
                }
                "exact" => {
                    let want = e.value.as_ref().map(as_field).unwrap_or(Field::Null);
                    match (&f, &want) {
                        (Field::Str(a), Field::Str(b)) => fold(a, ci) == fold(b, ci),
                        (Field::List(l), Field::Str(b)) => {
                            l.iter().any(|a| fold(a, ci) == fold(b, ci))
                        }
                        (a, b) => order(a, b) == Some(Ordering::Equal) || a == b,
                    }
                }
                "contains" => {
                    let sub = e
                        .sub_string
                        .clone()
                        .or_else(|| e.value.as_ref().map(text))
                        .unwrap_or_default();
                    let sub = fold(&sub, ci);
                    match &f {
                        Field::Str(s) => fold(s, ci).contains(&sub),
                        Field::List(l) => l.iter().any(|s| fold(s, ci).contains(&sub)),
                        _ => false,
                    }
                }
                "compare" => {
                    let want = e.value.as_ref().map(as_field).unwrap_or(Field::Null);
                    let want = match (&f, want) {
                        (Field::Num(_), Field::Str(s)) => {
                            s.parse::<f64>().map(Field::Num).unwrap_or(Field::Str(s))
                        }
                        (_, w) => w,
                    };
                    match order(&f, &want) {
                        Some(c) => match e.operator.as_deref() {
                            Some("<") => c.is_lt(),
                            Some(">") => c.is_gt(),
                            Some("<=") => c.is_le(),
                            Some(">=") => c.is_ge(),
                            _ => false,
                        },
                        None => false,
                    }
                }
                _ => false,
            }
        }
    };
    r != e.invert
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FIELDS: &[&str] = &["name", "cuda_version", "cpu", "tasks", "price", "domain"];

    fn items() -> Vec<HashMap<&'static str, Field>> {
        let mk = |name: &str,
                  cuda: Option<&str>,
                  cpu: bool,
                  tasks: &[&str],
                  price: f64,
                  domain: Option<&str>| {
            HashMap::from([
                ("name", Field::Str(name.into())),
                (
                    "cuda_version",
                    cuda.map(|c| Field::Str(c.into())).unwrap_or(Field::Null),
                ),
                ("cpu", Field::Bool(cpu)),
                (
                    "tasks",
                    Field::List(tasks.iter().map(|t| t.to_string()).collect()),
                ),
                ("price", Field::Num(price)),
                (
                    "domain",
                    domain.map(|d| Field::Str(d.into())).unwrap_or(Field::Null),
                ),
            ])
        };
        vec![
            mk(
                "PyTorch Train",
                Some("12.4"),
                false,
                &["Train", "Predict"],
                0.0,
                Some("Image Classification"),
            ),
            mk(
                "yolo-detect",
                Some("11.8"),
                false,
                &["Predict"],
                2.5,
                Some("Object Detection"),
            ),
            mk("sklearn", None, true, &["Train"], 0.0, None),
            mk(
                "Whisper",
                Some("12.10"),
                false,
                &["Predict"],
                1.0,
                Some("Speech"),
            ),
        ]
    }

    fn names(spec: &str) -> Vec<String> {
        let s = FilterSpec::parse(spec).unwrap();
        s.validate(FIELDS).unwrap();
        let mut v: Vec<_> = items()
            .into_iter()
            .filter(|i| s.matches(&|f| i.get(f).cloned().unwrap_or(Field::Null)))
            .collect();
        s.sort(&mut v, &|i, f| i.get(f).cloned().unwrap_or(Field::Null));
        v.iter()
            .map(|i| match &i["name"] {
                Field::Str(s) => s.clone(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn the_semantics_table() {
        assert_eq!(
            names(r#"{"expressions":[{"type":"exact","field":"name","value":"sklearn"}]}"#),
            ["sklearn"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"exact","field":"name","value":"SKLEARN","case_insensitive":true}]}"#
            ),
            ["sklearn"]
        );
        assert!(
            names(r#"{"expressions":[{"type":"exact","field":"name","value":"SKLEARN"}]}"#)
                .is_empty()
        );
        assert_eq!(
            names(r#"{"expressions":[{"type":"contains","field":"name","sub_string":"Torch"}]}"#),
            ["PyTorch Train"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"contains","field":"name","value":"TORCH","case_insensitive":true}]}"#
            ),
            ["PyTorch Train"]
        );
        assert_eq!(
            names(r#"{"expressions":[{"type":"is_null","field":"cuda_version"}]}"#),
            ["sklearn"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"is_null","field":"cuda_version","invert":true}],"order_by":[{"field":"name"}]}"#
            ),
            ["PyTorch Train", "Whisper", "yolo-detect"]
        );
        // Versions compare as numbers: 12.10 > 12.4 > 11.8.
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"compare","field":"cuda_version","operator":">=","value":"12.4"}],"order_by":[{"field":"cuda_version","ascending":false}]}"#
            ),
            ["Whisper", "PyTorch Train"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"compare","field":"price","operator":">","value":1}]}"#
            ),
            ["yolo-detect"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"exact","field":"tasks","value":"Train"},{"type":"exact","field":"cpu","value":false}]}"#
            ),
            ["PyTorch Train"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"or","sub_expressions":[{"type":"exact","field":"cpu","value":true},{"type":"contains","field":"domain","value":"speech","case_insensitive":true}]}],"order_by":[{"field":"name"}]}"#
            ),
            ["Whisper", "sklearn"]
        );
        assert_eq!(
            names(
                r#"{"expressions":[{"type":"and","sub_expressions":[{"type":"exact","field":"tasks","value":"Predict"},{"type":"compare","field":"price","operator":"<","value":2}]}],"order_by":[{"field":"name"}]}"#
            ),
            ["PyTorch Train", "Whisper"]
        );
        // Nulls first or last.
        assert_eq!(
            names(r#"{"order_by":[{"field":"domain","nulls_first":true}]}"#)[0],
            "sklearn"
        );
        assert_eq!(names(r#"{"order_by":[{"field":"domain"}]}"#)[3], "sklearn");
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        for (spec, why) in [
            (
                r#"{"expressions":[{"type":"exact","field":"password","value":"x"}]}"#,
                "not a field",
            ),
            (
                r#"{"expressions":[{"type":"like","field":"name","value":"x"}]}"#,
                "not an expression type",
            ),
            (
                r#"{"expressions":[{"type":"compare","field":"price","operator":"!=","value":1}]}"#,
                "not a comparison",
            ),
            (
                r#"{"expressions":[{"type":"and","sub_expressions":[]}]}"#,
                "needs sub_expressions",
            ),
            (
                r#"{"expressions":[{"type":"and","sub_expressions":[{"type":"exact","field":"cpu","value":true},{"type":"or","sub_expressions":[{"type":"exact","field":"name","value":"x"}]}]}]}"#,
                "an \"and\" cannot contain an \"or\"",
            ),
            (
                r#"{"order_by":[{"field":"name; DROP TABLE x"}]}"#,
                "order by",
            ),
        ] {
            let e = FilterSpec::parse(spec)
                .unwrap()
                .validate(FIELDS)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
        assert!(FilterSpec::parse("{not json").is_err());
    }
}
