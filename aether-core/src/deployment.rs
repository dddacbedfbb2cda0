//! The deployment state machine, kept free of IO so the server, tests and any future worker
//! share one definition of which transitions are legal.
//!
//! Callers feed [`DeploymentEvent`]s together with the current time and get back [`Action`]s
//! as data; executing them (starting processes, writing rows, telling other deployments) is
//! the adapter's job. Keeping the clock an argument makes every transition reproducible in
//! tests and property checks.
//!
//! ```text
//! pending -> deploying -> running -> superseded
//!    |        |  ^  |        |----> rolled_back
//!    |        |  |  |        \----> failed (the release was found gone)
//!    |        |  progress    |
//!    |        \----> failed <-/
//!    \-----------\----> cancelled
//! ```
//!
//! `progress` keeps a deployment `deploying` and only records what the runtime reported
//! (pulling the artifact, waiting for readiness, a crash loop), so the audit trail shows a
//! rollout as it happens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Pending,
    Deploying,
    Running,
    Failed,
    Superseded,
    RolledBack,
    Cancelled,
}

impl DeploymentStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Deploying,
        Self::Running,
        Self::Failed,
        Self::Superseded,
        Self::RolledBack,
        Self::Cancelled,
    ];

    /// Terminal deployments are history: adapters may archive them and never need to feed
    /// them events again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Superseded | Self::RolledBack | Self::Cancelled)
    }

    /// Same spelling as the serde form, so database columns and JSON agree.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::RolledBack => "rolled_back",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown deployment status {0:?}")]
pub struct ParseStatusError(pub String);

impl FromStr for DeploymentStatus {
    type Err = ParseStatusError;

    /// Exact match only: a status column with other spelling means the row was written by
    /// something else, and guessing would hide that.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == text).ok_or_else(|| ParseStatusError(text.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentEvent {
    RolloutStarted,
    RolloutSucceeded {
        url: Option<String>,
    },
    RolloutFailed {
        reason: String,
    },
    /// What the runtime reports while the rollout goes on; the status stays `deploying`.
    Progress {
        message: String,
    },
    /// A running release is no longer there (found gone when the control plane checked).
    ReleaseLost {
        reason: String,
    },
    /// `by` is the id of the newer deployment of the same app that is now running.
    Superseded {
        by: String,
    },
    RolledBack {
        reason: Option<String>,
    },
    Cancelled {
        reason: Option<String>,
    },
}

impl DeploymentEvent {
    /// A stable snake_case name for error messages and logs, without the payload (which may
    /// be long or user-supplied).
    pub fn name(&self) -> &'static str {
        match self {
            Self::RolloutStarted => "rollout_started",
            Self::RolloutSucceeded { .. } => "rollout_succeeded",
            Self::RolloutFailed { .. } => "rollout_failed",
            Self::Progress { .. } => "progress",
            Self::ReleaseLost { .. } => "release_lost",
            Self::Superseded { .. } => "superseded",
            Self::RolledBack { .. } => "rolled_back",
            Self::Cancelled { .. } => "cancelled",
        }
    }
}

/// Side effects the adapter must carry out, in order, after a successful transition.
///
/// Each deployment only asks for effects on itself, except [`Action::SupersedePrevious`],
/// which the adapter resolves to the app's previously running deployment. That deployment's
/// own machine then asks to stop its release, so a release is stopped exactly once and by
/// the machine that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Begin rolling out this deployment's artifact; report the outcome with
    /// `RolloutSucceeded` or `RolloutFailed`.
    StartRollout,
    /// Stop this deployment's processes, whether a rollout in progress or a serving release.
    /// Must be idempotent in the adapter: the machine does not know how far a failed rollout
    /// got, so it asks whenever the deployment can no longer serve.
    StopRelease,
    /// Feed `Superseded { by: <this deployment's id> }` to the app's previously running
    /// deployment, if there is one. Emitted only once this deployment is running, so the app
    /// is never left without a serving release.
    SupersedePrevious,
    /// Persist the transition (the audit trail and the status column).
    RecordEvent(EventRecord),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub from: DeploymentStatus,
    pub to: DeploymentStatus,
    pub at_unix_ms: i64,
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("deployment is {from}; event {event} is not allowed")]
    Illegal { from: DeploymentStatus, event: &'static str },
}

/// Stored rows that would break the machine's invariants; loading them would let later
/// transitions build on corrupt state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error("stored deployment is {status} but failure_reason is {}", if *.has_reason { "set" } else { "missing" })]
    FailureReasonMismatch { status: DeploymentStatus, has_reason: bool },
    #[error("stored deployment was updated at {updated_at_unix_ms} before it was created at {created_at_unix_ms}")]
    UpdatedBeforeCreated { created_at_unix_ms: i64, updated_at_unix_ms: i64 },
}

/// The machine's state. Fields are private so every change goes through [`Deployment::handle`]
/// and the invariants (failure_reason set iff failed, updated_at never before created_at and
/// never decreasing) cannot be bypassed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    status: DeploymentStatus,
    created_at_unix_ms: i64,
    updated_at_unix_ms: i64,
    url: Option<String>,
    failure_reason: Option<String>,
}

impl Deployment {
    pub fn new(now_unix_ms: i64) -> Self {
        Self {
            status: DeploymentStatus::Pending,
            created_at_unix_ms: now_unix_ms,
            updated_at_unix_ms: now_unix_ms,
            url: None,
            failure_reason: None,
        }
    }

    /// Rebuilds the machine from a stored row. Fallible rather than normalising, because
    /// silently rewriting an inconsistent row would hide whatever wrote it.
    pub fn restore(
        status: DeploymentStatus,
        created_at_unix_ms: i64,
        updated_at_unix_ms: i64,
        url: Option<String>,
        failure_reason: Option<String>,
    ) -> Result<Self, RestoreError> {
        if failure_reason.is_some() != (status == DeploymentStatus::Failed) {
            return Err(RestoreError::FailureReasonMismatch { status, has_reason: failure_reason.is_some() });
        }
        if updated_at_unix_ms < created_at_unix_ms {
            return Err(RestoreError::UpdatedBeforeCreated { created_at_unix_ms, updated_at_unix_ms });
        }
        Ok(Self { status, created_at_unix_ms, updated_at_unix_ms, url, failure_reason })
    }

    pub fn status(&self) -> DeploymentStatus {
        self.status
    }

    pub fn created_at_unix_ms(&self) -> i64 {
        self.created_at_unix_ms
    }

    pub fn updated_at_unix_ms(&self) -> i64 {
        self.updated_at_unix_ms
    }

    /// Kept after the deployment stops running so history still shows where it was served.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    pub fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }

    /// Applies one event. On error nothing changes, so an adapter can report the error and
    /// carry on with the stored row as it was.
    ///
    /// A `now_unix_ms` earlier than the last update is clamped to it rather than rejected:
    /// wall clocks step backwards (NTP corrections, several server instances), but the event
    /// itself really happened, and refusing it could strand a deployment in `deploying`
    /// forever. Clamping keeps timestamps monotonic, which is what ordering the audit trail
    /// needs.
    pub fn handle(&mut self, event: DeploymentEvent, now_unix_ms: i64) -> Result<Vec<Action>, TransitionError> {
        use DeploymentEvent as E;
        use DeploymentStatus as S;

        let from = self.status;
        let illegal = TransitionError::Illegal { from, event: event.name() };
        let (to, reason, mut actions) = match (from, event) {
            (S::Pending, E::RolloutStarted) => (S::Deploying, None, vec![Action::StartRollout]),
            (S::Deploying, E::RolloutSucceeded { url }) => {
                self.url = url;
                (S::Running, None, vec![Action::SupersedePrevious])
            }
            (S::Deploying, E::RolloutFailed { reason }) => {
                self.failure_reason = Some(reason.clone());
                (S::Failed, Some(reason), vec![Action::StopRelease])
            }
            (S::Deploying, E::Progress { message }) => (S::Deploying, Some(message), Vec::new()),
            (S::Running, E::ReleaseLost { reason }) => {
                self.failure_reason = Some(reason.clone());
                (S::Failed, Some(reason), vec![Action::StopRelease])
            }
            (S::Running, E::Superseded { by }) => {
                (S::Superseded, Some(format!("superseded by {by}")), vec![Action::StopRelease])
            }
            (S::Running, E::RolledBack { reason }) => (S::RolledBack, reason, vec![Action::StopRelease]),
            (S::Pending, E::Cancelled { reason }) => (S::Cancelled, reason, Vec::new()),
            (S::Deploying, E::Cancelled { reason }) => (S::Cancelled, reason, vec![Action::StopRelease]),
            _ => return Err(illegal),
        };

        let at_unix_ms = now_unix_ms.max(self.updated_at_unix_ms);
        self.status = to;
        self.updated_at_unix_ms = at_unix_ms;
        actions.push(Action::RecordEvent(EventRecord { from, to, at_unix_ms, reason }));
        Ok(actions)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use DeploymentEvent as E;
    use DeploymentStatus as S;
    use proptest::prelude::*;

    fn at(status: S) -> Deployment {
        let reason = (status == S::Failed).then(|| "boom".to_owned());
        Deployment::restore(status, 10, 20, None, reason).unwrap()
    }

    /// Written out independently of `handle` so the property test checks the design doc, not
    /// the implementation against itself.
    fn edge_allowed(from: S, to: S) -> bool {
        matches!(
            (from, to),
            (S::Pending, S::Deploying)
                | (S::Deploying, S::Running)
                | (S::Deploying, S::Failed)
                | (S::Running, S::Superseded)
                | (S::Running, S::RolledBack)
                | (S::Pending, S::Cancelled)
                | (S::Deploying, S::Cancelled)
                | (S::Deploying, S::Deploying)
                | (S::Running, S::Failed)
        )
    }

    fn all_events() -> Vec<E> {
        vec![
            E::RolloutStarted,
            E::RolloutSucceeded { url: None },
            E::RolloutFailed { reason: "x".into() },
            E::Progress { message: "pulling artifact".into() },
            E::ReleaseLost { reason: "gone".into() },
            E::Superseded { by: "d2".into() },
            E::RolledBack { reason: None },
            E::Cancelled { reason: None },
        ]
    }

    #[test]
    fn status_strings_round_trip_and_match_serde() {
        for status in S::ALL {
            assert_eq!(status.as_str().parse::<S>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<S>(&json).unwrap(), status);
        }
        assert_eq!("Running".parse::<S>(), Err(ParseStatusError("Running".into())));
    }

    #[test]
    fn terminal_states() {
        let terminal: Vec<S> = S::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [S::Failed, S::Superseded, S::RolledBack, S::Cancelled]);
    }

    #[test]
    fn each_legal_transition() {
        use Action::{StartRollout as Start, StopRelease as Stop, SupersedePrevious as Supersede};
        let reason = || Some("why".to_owned());
        let superseded = "superseded by d2".to_owned();
        for (from, event, to, effects, recorded) in [
            (S::Pending, E::RolloutStarted, S::Deploying, vec![Start], None),
            (S::Deploying, E::RolloutSucceeded { url: reason() }, S::Running, vec![Supersede], None),
            (S::Deploying, E::RolloutFailed { reason: "why".into() }, S::Failed, vec![Stop], reason()),
            (S::Deploying, E::Progress { message: "why".into() }, S::Deploying, vec![], reason()),
            (S::Running, E::ReleaseLost { reason: "why".into() }, S::Failed, vec![Stop], reason()),
            (S::Running, E::Superseded { by: "d2".into() }, S::Superseded, vec![Stop], Some(superseded)),
            (S::Running, E::RolledBack { reason: reason() }, S::RolledBack, vec![Stop], reason()),
            (S::Pending, E::Cancelled { reason: reason() }, S::Cancelled, vec![], reason()),
            (S::Deploying, E::Cancelled { reason: None }, S::Cancelled, vec![Stop], None),
        ] {
            let mut d = at(from);
            let mut actions = d.handle(event, 30).unwrap();
            let record = EventRecord { from, to, at_unix_ms: 30, reason: recorded };
            assert_eq!(actions.pop(), Some(Action::RecordEvent(record)));
            assert_eq!(actions, effects, "{from} -> {to}");
            assert_eq!(d.status(), to);
            assert_eq!(d.updated_at_unix_ms(), 30);
        }
    }

    #[test]
    fn running_keeps_url_and_failed_keeps_reason() {
        let mut d = at(S::Deploying);
        d.handle(E::RolloutSucceeded { url: Some("https://a.example".into()) }, 30).unwrap();
        assert_eq!(d.url(), Some("https://a.example"));
        d.handle(E::Superseded { by: "d2".into() }, 40).unwrap();
        assert_eq!(d.url(), Some("https://a.example"));
        let mut d = at(S::Deploying);
        d.handle(E::RolloutFailed { reason: "health check timed out".into() }, 30).unwrap();
        assert_eq!(d.failure_reason(), Some("health check timed out"));
    }

    #[test]
    fn running_rejects_second_success() {
        let mut d = at(S::Running);
        let before = d.clone();
        let err = d.handle(E::RolloutSucceeded { url: None }, 30).unwrap_err();
        assert_eq!(err, TransitionError::Illegal { from: S::Running, event: "rollout_succeeded" });
        assert_eq!(err.to_string(), "deployment is running; event rollout_succeeded is not allowed");
        assert_eq!(d, before);
    }

    #[test]
    fn selected_illegal_events() {
        for (status, event) in [
            (S::Pending, E::RolloutSucceeded { url: None }),
            (S::Pending, E::Superseded { by: "d".into() }),
            (S::Deploying, E::RolloutStarted),
            (S::Running, E::Cancelled { reason: None }),
            (S::Running, E::RolloutFailed { reason: "x".into() }),
            (S::Running, E::Progress { message: "x".into() }),
            (S::Pending, E::Progress { message: "x".into() }),
            (S::Pending, E::ReleaseLost { reason: "x".into() }),
            (S::Deploying, E::ReleaseLost { reason: "x".into() }),
        ] {
            let mut d = at(status);
            assert!(d.handle(event, 30).is_err(), "{status} accepted an event");
            assert_eq!(d, at(status));
        }
    }

    #[test]
    fn terminal_states_reject_everything() {
        for status in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in all_events() {
                let name = event.name();
                let mut d = at(status);
                assert_eq!(d.handle(event, 30), Err(TransitionError::Illegal { from: status, event: name }));
                assert_eq!(d, at(status));
            }
        }
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut d = Deployment::new(1_000);
        let actions = d.handle(E::RolloutStarted, 500).unwrap();
        let record = EventRecord { from: S::Pending, to: S::Deploying, at_unix_ms: 1_000, reason: None };
        assert_eq!(actions.last(), Some(&Action::RecordEvent(record)));
        assert_eq!(d.updated_at_unix_ms(), 1_000);
    }

    #[test]
    fn restore_rejects_inconsistent_rows() {
        assert_eq!(
            Deployment::restore(S::Failed, 1, 2, None, None),
            Err(RestoreError::FailureReasonMismatch { status: S::Failed, has_reason: false })
        );
        assert!(Deployment::restore(S::Running, 1, 2, None, Some("x".into())).is_err());
        assert_eq!(
            Deployment::restore(S::Running, 5, 4, None, None),
            Err(RestoreError::UpdatedBeforeCreated { created_at_unix_ms: 5, updated_at_unix_ms: 4 })
        );
    }

    fn event_strategy() -> impl Strategy<Value = E> {
        let text = "[a-z0-9 ]{0,8}";
        prop_oneof![
            Just(E::RolloutStarted),
            proptest::option::of(text).prop_map(|url| E::RolloutSucceeded { url }),
            text.prop_map(|reason| E::RolloutFailed { reason }),
            text.prop_map(|message| E::Progress { message }),
            text.prop_map(|reason| E::ReleaseLost { reason }),
            text.prop_map(|by| E::Superseded { by }),
            proptest::option::of(text).prop_map(|reason| E::RolledBack { reason }),
            proptest::option::of(text).prop_map(|reason| E::Cancelled { reason }),
        ]
    }

    /// Drives one deployment through `steps` and checks every invariant after each step.
    /// Times are used as given, so each caller decides whether they are nondecreasing.
    fn check_run(start: i64, steps: Vec<(E, i64)>) -> Result<(), TestCaseError> {
        let mut d = Deployment::new(start);
        for (event, now) in steps {
            let before = d.clone();
            let result = d.handle(event, now);
            if before.status().is_terminal() {
                prop_assert_eq!(d.status(), before.status());
            }
            match result {
                Ok(actions) => {
                    let records: Vec<&EventRecord> = actions
                        .iter()
                        .filter_map(|a| match a {
                            Action::RecordEvent(r) => Some(r),
                            _ => None,
                        })
                        .collect();
                    prop_assert_eq!(records.len(), 1);
                    prop_assert_eq!(records[0].from, before.status());
                    prop_assert_eq!(records[0].to, d.status());
                    prop_assert_eq!(records[0].at_unix_ms, d.updated_at_unix_ms());
                    prop_assert!(edge_allowed(before.status(), d.status()));
                }
                Err(_) => prop_assert_eq!(&d, &before),
            }
            prop_assert!(d.updated_at_unix_ms() >= before.updated_at_unix_ms());
            prop_assert!(d.updated_at_unix_ms() >= d.created_at_unix_ms());
            prop_assert_eq!(d.created_at_unix_ms(), start);
            prop_assert_eq!(d.failure_reason().is_some(), d.status() == S::Failed);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn invariants_hold_for_nondecreasing_times(
            start in -1_000_000i64..1_000_000,
            steps in proptest::collection::vec((event_strategy(), 0i64..1_000), 0..24),
        ) {
            let mut now = start;
            let steps = steps
                .into_iter()
                .map(|(event, delta)| {
                    now += delta;
                    (event, now)
                })
                .collect();
            check_run(start, steps)?;
        }

        #[test]
        fn invariants_hold_even_when_the_clock_jumps(
            start in any::<i64>(),
            steps in proptest::collection::vec((event_strategy(), any::<i64>()), 0..24),
        ) {
            check_run(start, steps)?;
        }
    }
}
