//! Label selectors (`app=web,tier!=db,env in (a,b),!canary`) and field selectors
//! (`metadata.name=web,status.phase!=Running`), parsed from query strings and matched against
//! stored objects.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelMatcher(Vec<Requirement>);

impl LabelMatcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        split_terms(text).into_iter().map(parse_requirement).collect::<Result<Vec<_>, _>>().map(LabelMatcher)
    }

    /// The selector of a workload (`spec.selector`), as the server would evaluate it.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Requirement::Equals(key.clone(), value.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let (key, values) = (expression.key.clone(), expression.values.clone().unwrap_or_default());
            requirements.push(match expression.operator.as_str() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => return Err(format!("\"{other}\" is not a valid label selector operator")),
            });
        }
        Ok(LabelMatcher(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| requirement.matches(labels))
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches(&self, object: &Value) -> bool {
        self.is_empty() || self.matches_labels(&labels_of(object))
    }
}

/// A parsed field selector over dotted paths into the object (`metadata.name`, `status.phase`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldMatcher(Vec<(Vec<String>, bool, String)>);

impl FieldMatcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(text) {
            let (path, equal, value) = if let Some((path, value)) = term.split_once("!=") {
                (path, false, value)
            } else if let Some((path, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (path, true, value)
            } else {
                return Err(format!("invalid selector: '{term}'; can't understand '{term}'"));
            };
            let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
            terms.push((path, equal, value.trim().to_owned()));
        }
        Ok(FieldMatcher(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let found = path.iter().try_fold(object, |at, key| at.get(key));
            let text = match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (text == *value) == *equal
        })
    }
}

/// The `labelSelector` and `fieldSelector` of a list, watch or collection delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectFilter {
    labels: LabelMatcher,
    fields: FieldMatcher,
}

impl ObjectFilter {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            labels: LabelMatcher::parse(labels.unwrap_or_default())?,
            fields: FieldMatcher::parse(fields.unwrap_or_default())?,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

/// An object's `metadata.labels`.
pub(crate) fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// Splits on commas outside parentheses, dropping empty terms.
fn split_terms(text: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().map(str::trim).filter(|term| !term.is_empty()).collect()
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let invalid = || format!("unable to parse requirement: invalid label selector term '{term}'");
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        if super::admission::is_label_key(k) { Ok(k.to_owned()) } else { Err(invalid()) }
    };
    let value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if super::admission::is_label_value(v) { Ok(v.to_owned()) } else { Err(invalid()) }
    };
    if let Some(rest) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key(rest)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, value(v)?));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, value(v)?));
    }
    if let Some((head, tail)) = term.split_once('(') {
        let inner = tail.strip_suffix(')').ok_or_else(invalid)?;
        let values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
        let mut words = head.split_whitespace();
        let (k, operator) = (words.next().ok_or_else(invalid)?, words.next().ok_or_else(invalid)?);
        if words.next().is_some() {
            return Err(invalid());
        }
        return match operator {
            "in" => Ok(Requirement::In(key(k)?, values)),
            "notin" => Ok(Requirement::NotIn(key(k)?, values)),
            _ => Err(invalid()),
        };
    }
    Ok(Requirement::Exists(key(term)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn equality_set_and_existence_terms() {
        let selector = LabelMatcher::parse("app=web, tier!=db,env in (prod, staging),!canary,team").unwrap();
        assert!(selector.matches_labels(&labels(&[("app", "web"), ("env", "prod"), ("team", "a")])));
        assert!(!selector.matches_labels(&labels(&[("app", "web"), ("env", "dev"), ("team", "a")])));
        assert!(!selector.matches_labels(&labels(&[("app", "web"), ("env", "prod"), ("team", "a"), ("canary", "1")])));
        assert!(!selector.matches_labels(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(LabelMatcher::parse("env notin (a,b)").unwrap().matches_labels(&labels(&[])));
        assert!(LabelMatcher::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["app=web web", "a b", "env in (a", "env within (a)", "=x", "app=sha256:abc"] {
            assert!(LabelMatcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_follow_dotted_paths() {
        let pod = json!({ "metadata": { "name": "web-1" }, "status": { "phase": "Running" } });
        assert!(FieldMatcher::parse("metadata.name=web-1,status.phase!=Pending").unwrap().matches(&pod));
        assert!(!FieldMatcher::parse("status.phase==Pending").unwrap().matches(&pod));
        assert!(FieldMatcher::parse("spec.nodeName=").unwrap().matches(&pod));
    }
}
