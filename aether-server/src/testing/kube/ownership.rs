//! Field ownership, coarsely: enough of server-side apply for a few field managers. A field here
//! is a top-level field of the object (`spec`, `data`, `type`, ...), one label, one annotation,
//! `metadata.ownerReferences`, `metadata.finalizers`, or `status`. Applying takes the fields in
//! the body, drops the fields the same manager applied before and left out now, and conflicts
//! (without `force`) when it would change a field another manager owns.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::resource::Kind;

/// A path to an owned field, e.g. `["metadata", "labels", "app"]`.
pub(crate) type Path = Vec<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Manager {
    operation: &'static str,
    subresource: Option<&'static str>,
    time: String,
}

/// Who owns which fields of one object, rendered as its `metadata.managedFields`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    owners: BTreeMap<Path, String>,
    managers: BTreeMap<String, Manager>,
}

/// How a write reached the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Fields {
    /// Fields of a new object, all owned by `manager`.
    pub fn new(object: &Value, manager: &str, operation: Operation, now: &str) -> Self {
        let mut fields = Self::default();
        for path in paths(object) {
            fields.owners.insert(path, manager.to_owned());
        }
        fields.record(manager, operation, None, now);
        fields
    }

    /// Conflicts of `manager` applying `applied` onto `current`: `(owner, field)` pairs.
    pub fn conflicts(&self, current: &Value, applied: &Value, manager: &str) -> Vec<(String, String)> {
        paths(applied)
            .into_iter()
            .filter_map(|path| {
                let owner = self.owners.get(&path)?;
                (owner != manager && lookup(current, &path) != lookup(applied, &path))
                    .then(|| (owner.clone(), render(&path)))
            })
            .collect()
    }

    /// Server-side apply of `applied` by `manager` onto `current`: its fields replace the
    /// current ones, and fields it applied before but left out now are removed.
    pub fn apply(&mut self, current: &Value, applied: &Value, manager: &str, now: &str) -> Value {
        let mut merged = current.clone();
        let applied_paths = paths(applied);
        let dropped: Vec<Path> = self
            .owners
            .iter()
            .filter(|(path, owner)| *owner == manager && path[0] != "status" && !applied_paths.contains(path))
            .map(|(path, _)| path.clone())
            .collect();
        for path in dropped {
            remove(&mut merged, &path);
            self.owners.remove(&path);
        }
        for path in &applied_paths {
            if let Some(value) = lookup(applied, path) {
                insert(&mut merged, path, value.clone());
            }
        }
        for path in applied_paths {
            self.owners.insert(path, manager.to_owned());
        }
        self.record(manager, Operation::Apply, None, now);
        merged
    }

    /// An update (PUT, merge patch, a controller's write) from `old` to `new`: `manager` takes
    /// the fields whose values it changed; fields now absent belong to nobody. A status write
    /// (`subresource` `Some("status")`) touches only `status`.
    pub fn update(&mut self, old: &Value, new: &Value, manager: &str, subresource: Option<&'static str>, now: &str) {
        let written = match subresource {
            Some(_) => vec![vec!["status".to_owned()]],
            None => {
                let present = paths(new);
                self.owners.retain(|path, _| path[0] == "status" || present.contains(path));
                present
            }
        };
        for path in written.into_iter().filter(|path| lookup(old, path) != lookup(new, path)) {
            self.owners.insert(path, manager.to_owned());
        }
        self.record(manager, Operation::Update, subresource, now);
    }

    fn record(&mut self, manager: &str, operation: Operation, subresource: Option<&'static str>, now: &str) {
        let operation = match operation {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        };
        if self.owners.values().any(|owner| owner == manager) {
            self.managers.insert(manager.to_owned(), Manager { operation, subresource, time: now.to_owned() });
        }
        let owning: Vec<&String> = self.owners.values().collect();
        self.managers.retain(|name, _| owning.contains(&name));
    }

    /// `metadata.managedFields`, one entry per manager, with `fieldsV1` listing its fields.
    pub fn managed_fields(&self, kind: Kind) -> Value {
        let entries: Vec<Value> = self
            .managers
            .iter()
            .map(|(name, manager)| {
                let mut fields = Value::Object(Map::new());
                for path in self.owners.iter().filter(|(_, owner)| *owner == name).map(|(path, _)| path) {
                    let prefixed: Path = path.iter().map(|segment| format!("f:{segment}")).collect();
                    insert(&mut fields, &prefixed, json!({}));
                }
                let mut entry = json!({
                    "manager": name,
                    "operation": manager.operation,
                    "apiVersion": kind.api_version(),
                    "time": manager.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                });
                if let (Some(subresource), Some(map)) = (manager.subresource, entry.as_object_mut()) {
                    map.insert("subresource".into(), json!(subresource));
                }
                entry
            })
            .collect();
        Value::Array(entries)
    }
}

/// The owned fields present in `object`.
fn paths(object: &Value) -> Vec<Path> {
    let Some(map) = object.as_object() else { return Vec::new() };
    let mut paths: Vec<Path> = map
        .iter()
        .filter(|(key, value)| {
            !["apiVersion", "kind", "metadata", "status"].contains(&key.as_str()) && !value.is_null()
        })
        .map(|(key, _)| vec![key.clone()])
        .collect();
    let metadata = map.get("metadata").and_then(Value::as_object);
    for group in ["labels", "annotations"] {
        for key in metadata.and_then(|m| m.get(group)).and_then(Value::as_object).into_iter().flat_map(Map::keys) {
            paths.push(vec!["metadata".into(), group.into(), key.clone()]);
        }
    }
    for list in ["ownerReferences", "finalizers"] {
        if metadata.and_then(|m| m.get(list)).is_some_and(|value| !value.is_null()) {
            paths.push(vec!["metadata".into(), list.into()]);
        }
    }
    paths
}

fn render(path: &Path) -> String {
    format!(".{}", path.join("."))
}

fn lookup<'a>(object: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(object, |at, key| at.get(key))
}

fn insert(object: &mut Value, path: &Path, value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = object;
    for key in parents {
        let Some(map) = at.as_object_mut() else { return };
        at = map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.insert(last.clone(), value);
    }
}

fn remove(object: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else { return };
    let parent = parents.iter().try_fold(object, |at, key| at.get_mut(key));
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.remove(last);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn apply_drops_what_the_manager_left_out_and_keeps_other_owners() {
        let first = json!({ "metadata": { "labels": { "a": "1", "b": "2" } }, "spec": { "x": 1 } });
        let mut fields = Fields::new(&first, "aether", Operation::Apply, "t0");
        let mut current = first.clone();
        current["metadata"]["annotations"] = json!({ "rev": "1" });
        current["status"] = json!({ "replicas": 1 });
        fields.update(&first, &current, "controller", None, "t1");
        fields.update(&first, &current, "controller", Some("status"), "t1");

        let second = json!({ "metadata": { "labels": { "a": "1" } }, "spec": { "x": 2 } });
        assert!(fields.conflicts(&current, &second, "aether").is_empty());
        let merged = fields.apply(&current, &second, "aether", "t2");
        assert_eq!(
            merged,
            json!({ "metadata": { "labels": { "a": "1" }, "annotations": { "rev": "1" } }, "spec": { "x": 2 }, "status": { "replicas": 1 } })
        );

        let other = json!({ "spec": { "x": 3 } });
        assert_eq!(fields.conflicts(&merged, &other, "intruder"), [("aether".to_owned(), ".spec".to_owned())]);
        let managed = fields.managed_fields(Kind::Deployment);
        assert_eq!(managed[0]["manager"], "aether");
        assert_eq!(managed[0]["fieldsV1"]["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert_eq!(managed[1]["subresource"], "status");
    }
}
