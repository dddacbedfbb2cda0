//! Where objects live: one map of every stored object, one resource version counter for all of
//! them (like etcd's revision), and the history of changes that watches replay and follow.
//!
//! Every change is published while the caller holds the cluster lock, and a watch takes its
//! snapshot and registers for new changes under that same lock, so no change falls between a
//! LIST and the WATCH that continues from its `resourceVersion`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::defaults::Allocator;
use super::error::ApiError;
use super::ownership::Fields;
use super::resource::Kind;

/// `(kind, namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub(crate) type Key = (Kind, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One stored change, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub revision: u64,
    pub kind: Kind,
    pub namespace: String,
    pub event: EventType,
    pub object: Value,
    /// The object before a modification, to tell a watch with a selector that an object left or
    /// entered its view.
    pub previous: Option<Value>,
}

/// A stored object and who owns which of its fields.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub object: Value,
    pub fields: Fields,
}

#[derive(Debug)]
struct Watcher {
    kind: Kind,
    namespace: Option<String>,
    sender: mpsc::UnboundedSender<Arc<Change>>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    revision: u64,
    objects: BTreeMap<Key, Entry>,
    history: Vec<Arc<Change>>,
    /// Changes up to this revision are forgotten; older watches get 410 Gone.
    compacted: u64,
    watchers: Vec<Watcher>,
    pub allocator: Allocator,
}

impl Store {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.objects.get(key)
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind, namespace.to_owned(), name.to_owned())).map(|entry| &entry.object)
    }

    /// Objects of `kind`, in one namespace or (with `None`) in all, ordered by namespace and name.
    pub fn list<'a>(&'a self, kind: Kind, namespace: Option<&'a str>) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |((k, ns, _), _)| *k == kind && namespace.is_none_or(|wanted| ns == wanted))
            .map(|(_, entry)| &entry.object)
    }

    /// Stores `object` under `key` with a new resource version and publishes ADDED or MODIFIED.
    pub fn commit(&mut self, key: Key, mut object: Value, fields: Fields) -> Value {
        self.revision += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), Value::String(self.revision.to_string()));
            metadata.insert("managedFields".into(), fields.managed_fields(key.0));
        }
        let previous = self.objects.insert(key.clone(), Entry { object: object.clone(), fields }).map(|old| old.object);
        let event = if previous.is_some() { EventType::Modified } else { EventType::Added };
        self.publish(Change {
            revision: self.revision,
            kind: key.0,
            namespace: key.1,
            event,
            object: object.clone(),
            previous,
        });
        object
    }

    /// Removes an object, publishing DELETED with the deletion's resource version.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?.object;
        self.revision += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), Value::String(self.revision.to_string()));
        }
        let change = Change {
            revision: self.revision,
            kind: key.0,
            namespace: key.1.clone(),
            event: EventType::Deleted,
            object: object.clone(),
            previous: None,
        };
        self.publish(change);
        Some(object)
    }

    fn publish(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push(Arc::clone(&change));
        self.watchers.retain(|watcher| {
            let wanted = watcher.kind == change.kind
                && watcher.namespace.as_ref().is_none_or(|namespace| *namespace == change.namespace);
            !wanted || watcher.sender.send(Arc::clone(&change)).is_ok()
        });
    }

    /// The changes of `kind` (in `namespace`, or all) after `revision`, or 410 Gone when they
    /// have been compacted away.
    pub fn changes_since(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        revision: u64,
    ) -> Result<Vec<Arc<Change>>, ApiError> {
        if revision < self.compacted {
            return Err(ApiError::gone(format!("too old resource version: {revision} ({})", self.compacted)));
        }
        Ok(self
            .history
            .iter()
            .filter(|change| change.revision > revision && change.kind == kind)
            .filter(|change| namespace.is_none_or(|namespace| change.namespace == namespace))
            .cloned()
            .collect())
    }

    /// Registers a watch: every change published from now on reaches the returned receiver.
    pub fn subscribe(&mut self, kind: Kind, namespace: Option<&str>) -> mpsc::UnboundedReceiver<Arc<Change>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.watchers.push(Watcher { kind, namespace: namespace.map(str::to_owned), sender });
        receiver
    }

    /// Forgets the history: watches from an older resource version get 410 Gone.
    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.history.clear();
    }

    /// Ends every open watch stream (cleanly, as when the server closes it).
    pub fn close_watches(&mut self) {
        self.watchers.clear();
    }

    pub fn watch_count(&self) -> usize {
        self.watchers.iter().filter(|watcher| !watcher.sender.is_closed()).count()
    }
}
