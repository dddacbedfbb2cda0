//! The write operations of the API: create, server-side apply, replace, merge patch and
//! delete, each ending the way the real server does: defaults filled in, server-owned metadata
//! (`uid`, `creationTimestamp`, `generation`, `resourceVersion`, `managedFields`) set, the result
//! validated, and a no-op write left unstored so that it emits no watch event.

use serde_json::{Map, Value, json};

use super::admission::{self, FieldValidation};
use super::defaults;
use super::error::ApiError;
use super::ownership::{Fields, Operation};
use super::resource::Kind;
use super::store::{Key, Store};

/// Who writes what, where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'static str>,
    pub manager: &'a str,
    /// The time of the write, RFC 3339.
    pub now: &'a str,
}

impl Target<'_> {
    fn key(&self) -> Key {
        (self.kind, self.namespace.to_owned(), self.name.to_owned())
    }
}

impl Store {
    /// POST: a new object; 409 AlreadyExists when the name is taken.
    pub fn create(&mut self, target: Target<'_>, object: Value) -> Result<Value, ApiError> {
        if self.entry(&target.key()).is_some() {
            return Err(ApiError::already_exists(target.kind, target.name));
        }
        let fields = Fields::new(&object, target.manager, Operation::Update, target.now);
        self.finish(target, None, object, fields)
    }

    /// PATCH with `application/apply-patch+yaml`.
    pub fn apply(&mut self, target: Target<'_>, applied: Value, force: bool) -> Result<Value, ApiError> {
        let Some(entry) = self.entry(&target.key()).cloned() else {
            if target.subresource.is_some() {
                return Err(ApiError::not_found(target.kind, target.name));
            }
            let fields = Fields::new(&applied, target.manager, Operation::Apply, target.now);
            return self.finish(target, None, applied, fields);
        };
        check_precondition(&entry.object, &applied, target)?;
        let mut fields = entry.fields.clone();
        if target.subresource.is_some() {
            let updated = with_status_of(&entry.object, &applied);
            fields.update(&entry.object, &updated, target.manager, target.subresource, target.now);
            return self.finish(target, Some(&entry.object), updated, fields);
        }
        // Compare like with like: the stored object was defaulted, so default the applied one.
        let mut applied = applied;
        defaults::apply(target.kind, &mut applied, Some(&entry.object), &mut self.allocator);
        let conflicts = fields.conflicts(&entry.object, &applied, target.manager);
        if !force && !conflicts.is_empty() {
            return Err(ApiError::apply_conflict(target.kind, target.name, &conflicts));
        }
        let merged = fields.apply(&entry.object, &applied, target.manager, target.now);
        self.finish(target, Some(&entry.object), merged, fields)
    }

    /// PUT: replaces the object (or, for the status subresource, its status).
    pub fn replace(&mut self, target: Target<'_>, object: Value) -> Result<Value, ApiError> {
        let entry = self.entry(&target.key()).cloned().ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
        check_precondition(&entry.object, &object, target)?;
        let replaced = match target.subresource {
            Some(_) => with_status_of(&entry.object, &object),
            None => with_status_of(&object, &entry.object),
        };
        let mut fields = entry.fields.clone();
        fields.update(&entry.object, &replaced, target.manager, target.subresource, target.now);
        self.finish(target, Some(&entry.object), replaced, fields)
    }

    /// PATCH with a JSON merge patch (RFC 7386); strategic merge patches are treated alike.
    pub fn merge_patch(
        &mut self,
        target: Target<'_>,
        patch: &Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let entry = self.entry(&target.key()).cloned().ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
        check_precondition(&entry.object, patch, target)?;
        let mut patched = entry.object.clone();
        merge(&mut patched, patch);
        let (patched, warnings) = admission::decode(target.kind, patched, validation, false)?;
        let patched = match target.subresource {
            Some(_) => with_status_of(&entry.object, &patched),
            None => with_status_of(&patched, &entry.object),
        };
        let mut fields = entry.fields.clone();
        fields.update(&entry.object, &patched, target.manager, target.subresource, target.now);
        Ok((self.finish(target, Some(&entry.object), patched, fields)?, warnings))
    }

    /// A write by the cluster itself (a controller or the kubelet), through `change`.
    pub fn update_with(&mut self, target: Target<'_>, change: impl FnOnce(&mut Value)) -> Result<Value, ApiError> {
        let entry = self.entry(&target.key()).cloned().ok_or_else(|| ApiError::not_found(target.kind, target.name))?;
        let mut updated = entry.object.clone();
        change(&mut updated);
        let mut fields = entry.fields.clone();
        fields.update(&entry.object, &updated, target.manager, target.subresource, target.now);
        if target.subresource.is_none() && entry.object.get("status") != updated.get("status") {
            fields.update(&entry.object, &updated, target.manager, Some("status"), target.now);
        }
        self.finish(target, Some(&entry.object), updated, fields)
    }

    /// DELETE, with the `preconditions` of the request's `DeleteOptions`.
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str, options: &Value) -> Result<Value, ApiError> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let object = self.entry(&key).map(|entry| &entry.object).ok_or_else(|| ApiError::not_found(kind, name))?;
        for (field, pointer) in [("uid", "/metadata/uid"), ("resourceVersion", "/metadata/resourceVersion")] {
            if let Some(wanted) = options.pointer(&format!("/preconditions/{field}")).filter(|v| !v.is_null())
                && object.pointer(pointer) != Some(wanted)
            {
                return Err(ApiError::stale(kind, name));
            }
        }
        self.remove(&key).ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Defaults, server-owned metadata, validation, then the commit (skipped when nothing changed).
    fn finish(
        &mut self,
        target: Target<'_>,
        old: Option<&Value>,
        mut object: Value,
        fields: Fields,
    ) -> Result<Value, ApiError> {
        let kind = target.kind;
        if old.is_none() && kind.namespaced() && self.get(Kind::Namespace, "", target.namespace).is_none() {
            return Err(ApiError::not_found(Kind::Namespace, target.namespace));
        }
        defaults::apply(kind, &mut object, old, &mut self.allocator);
        let spec_changed = old.is_some_and(|old| old.get("spec") != object.get("spec"));
        let metadata = metadata_mut(&mut object)
            .ok_or_else(|| ApiError::bad_request("the object and its metadata must be JSON objects"))?;
        metadata.insert("name".into(), json!(target.name));
        if kind.namespaced() {
            metadata.insert("namespace".into(), json!(target.namespace));
        }
        match old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "generation", "deletionTimestamp"] {
                    match old.pointer(&format!("/metadata/{field}")) {
                        Some(value) => metadata.insert(field.into(), value.clone()),
                        None => metadata.remove(field),
                    };
                }
                if kind.has_generation() && spec_changed {
                    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                    metadata.insert("generation".into(), json!(generation + 1));
                }
            }
            None => {
                metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                metadata.insert("creationTimestamp".into(), json!(target.now));
                if kind.has_generation() {
                    metadata.insert("generation".into(), json!(1));
                }
                metadata.remove("resourceVersion");
            }
        }
        admission::validate(kind, &object, old)?;
        if let Some(old) = old
            && comparable(old) == comparable(&object)
        {
            return Ok(old.clone());
        }
        Ok(self.commit(target.key(), object, fields))
    }
}

/// 409 when the body names a `resourceVersion` other than the stored one.
fn check_precondition(stored: &Value, body: &Value, target: Target<'_>) -> Result<(), ApiError> {
    match body.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(wanted)
            if !wanted.is_empty()
                && stored.pointer("/metadata/resourceVersion").and_then(Value::as_str) != Some(wanted) =>
        {
            Err(ApiError::stale(target.kind, target.name))
        }
        _ => Ok(()),
    }
}

/// `object` with the `status` of `source` (or none, when `source` has none).
fn with_status_of(object: &Value, source: &Value) -> Value {
    let mut result = object.clone();
    if let Some(map) = result.as_object_mut() {
        match source.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    result
}

fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let slot = object.as_object_mut()?.entry("metadata").or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// The object without what changes on every write anyway.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    object
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(target) = target.as_object_mut() {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
