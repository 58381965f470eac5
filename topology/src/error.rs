//! Every error of the model: why a tuple failed ([`FailReason`]), what a bolt returns
//! ([`BoltError`], transient or permanent, with its causes), what stops a component from
//! starting ([`ComponentError`]), and the problems of a topology description
//! ([`ValidationError`], all of them at once in [`ValidationErrors`]).

use std::fmt;

use crate::context::ComponentKind;

/// Why a tracked tuple failed; handed to [`Spout::fail`](crate::Spout::fail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The tuple tree was not completed within `message_timeout_ms`.
    Timeout,
    /// A bolt failed the tuple (returned an error or called `fail`), with its message.
    Failed {
        /// The bolt that failed it.
        component: String,
        /// The bolt's error.
        error: String,
        /// Whether trying again later can help ([`BoltError::is_transient`], or
        /// [`OutputCollector::fail_transient`](crate::OutputCollector::fail_transient)).
        transient: bool,
    },
    /// A bolt panicked while executing the tuple, with the panic message.
    Panic {
        /// The bolt that panicked.
        component: String,
        /// The panic message.
        message: String,
    },
    /// The topology shut down before the tuple tree completed.
    Shutdown,
}

impl FailReason {
    /// Whether replaying the tuple later can help: a timeout, a shutdown or a transient
    /// bolt error (a locked database, an absent broker) can; a permanent bolt error or a
    /// panic cannot, however often it is tried.
    pub fn is_transient(&self) -> bool {
        match self {
            FailReason::Timeout | FailReason::Shutdown => true,
            FailReason::Failed { transient, .. } => *transient,
            FailReason::Panic { .. } => false,
        }
    }

    /// A short machine-readable code: `timeout`, `failed`, `panic` or `shutdown`.
    pub fn code(&self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::Failed { .. } => "failed",
            FailReason::Panic { .. } => "panic",
            FailReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Timeout => f.write_str("timed out"),
            FailReason::Failed {
                component, error, ..
            } => {
                write!(f, "failed by bolt \"{component}\": {error}")
            }
            FailReason::Panic { component, message } => {
                write!(f, "bolt \"{component}\" panicked: {message}")
            }
            FailReason::Shutdown => f.write_str("topology shut down"),
        }
    }
}

/// An error a bolt returns from `execute`: the input tuple fails with its message.
///
/// It keeps what caused it (any `std::error::Error` converts into it, so `?` works in
/// `execute`, and [`source`](Self::source) walks the chain), and says whether trying the
/// tuple again later can help ([`is_transient`](Self::is_transient): a database that is
/// locked, a broker that is away) or not (a malformed input, a rule that can never hold).
/// Errors converted with `?` are permanent unless marked [`transient`](Self::transient).
#[derive(Debug)]
pub struct BoltError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    transient: bool,
}

impl BoltError {
    /// A permanent error with `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        BoltError {
            message: message.into(),
            source: None,
            transient: false,
        }
    }

    /// A transient error with `message`: trying again later can help.
    pub fn transient(message: impl Into<String>) -> Self {
        BoltError {
            transient: true,
            ..BoltError::msg(message)
        }
    }

    /// This error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// This error, marked transient (`true`) or permanent.
    pub fn set_transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The bolt's own message (without its causes; [`Display`](fmt::Display) shows both).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What caused it, if anything.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for BoltError {
    fn from(e: E) -> Self {
        BoltError {
            message: e.to_string(),
            source: e
                .source()
                .map(|s| Box::new(Chained(s.to_string(), chain_of(s))) as _),
            transient: false,
        }
    }
}

/// The rest of a converted error's chain, as text (the original's lifetime ends).
#[derive(Debug)]
struct Chained(String, Option<Box<Chained>>);

fn chain_of(e: &dyn std::error::Error) -> Option<Box<Chained>> {
    e.source()
        .map(|s| Box::new(Chained(s.to_string(), chain_of(s))))
}

impl fmt::Display for Chained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Chained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|c| c as _)
    }
}

impl fmt::Display for BoltError {
    /// The message, then each cause: `a: b: c` (a cause already quoted in the message is
    /// not repeated).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut next: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(e) = next {
            let text = e.to_string();
            if !self.message.contains(&text) {
                write!(f, ": {text}")?;
            }
            next = e.source();
        }
        Ok(())
    }
}

/// An error from `open` or `prepare`: the topology does not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error with `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        ComponentError(message.into())
    }
}

pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

pub(crate) fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// One problem in a topology description.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A bolt subscribes to a component that does not exist.
    #[error("bolt \"{component}\": input \"{input}\" doesn't match any component{}", did_you_mean(.suggestion))]
    UnknownInput {
        /// The subscribing bolt.
        component: String,
        /// The missing component.
        input: String,
        /// The closest existing id.
        suggestion: Option<String>,
    },
    /// A bolt subscribes to a stream its input does not declare.
    #[error("bolt \"{component}\": input \"{input}\" has no stream \"{stream}\" (declared streams: {})", list(.declared))]
    UnknownStream {
        /// The subscribing bolt.
        component: String,
        /// The input component.
        input: String,
        /// The missing stream.
        stream: String,
        /// The streams the input declares.
        declared: Vec<String>,
    },
    /// A fields or partial-key grouping names a field the stream does not declare.
    #[error("bolt \"{component}\": {grouping} grouping on field \"{field}\", which stream \"{stream}\" of \"{input}\" does not declare (declared fields: {})", list(.declared))]
    UndeclaredField {
        /// The subscribing bolt.
        component: String,
        /// `fields` or `partial_key`.
        grouping: String,
        /// The input component.
        input: String,
        /// The stream.
        stream: String,
        /// The missing field.
        field: String,
        /// The stream's declared fields.
        declared: Vec<String>,
    },
    /// Parallelism below 1.
    #[error("{kind} \"{component}\": parallelism must be at least 1, got {parallelism}")]
    BadParallelism {
        /// Spout or bolt.
        kind: ComponentKind,
        /// The component.
        component: String,
        /// The value given.
        parallelism: i64,
    },
    /// Two components share an id.
    #[error("component id \"{component}\" is used {count} times; ids must be unique")]
    DuplicateId {
        /// The id.
        component: String,
        /// How often it is used.
        count: usize,
    },
    /// No spout at all.
    #[error("topology \"{topology}\" has no spout; tuples must come from at least one")]
    NoSpout {
        /// The topology's name.
        topology: String,
    },
    /// A `type` the registry does not know.
    #[error("{kind} \"{component}\": unknown component type \"{type_name}\"{} (known {kind} types: {})", did_you_mean(.suggestion), list(.known))]
    UnknownType {
        /// Spout or bolt.
        kind: ComponentKind,
        /// The component.
        component: String,
        /// The unknown type.
        type_name: String,
        /// The closest known type.
        suggestion: Option<String>,
        /// The known types of this kind.
        known: Vec<String>,
    },
    /// Subscriptions form a cycle.
    #[error("cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The components on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// A grouping name that does not exist, or a malformed grouping.
    #[error("bolt \"{component}\": input \"{input}\": {message}")]
    BadGrouping {
        /// The subscribing bolt.
        component: String,
        /// The input component.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// A component's options (or its section in a file) are invalid.
    #[error("{kind} \"{component}\": {message}")]
    Invalid {
        /// Spout or bolt.
        kind: ComponentKind,
        /// The component.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// A problem with the topology as a whole (its `[topology]` section).
    #[error("topology: {message}")]
    Topology {
        /// What is wrong.
        message: String,
    },
}

/// Every problem found in a topology description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the topology:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the batch")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_bolt_error_keeps_its_causes_and_says_whether_to_retry() {
        let e: BoltError = Outer(std::io::Error::other("disk full")).into();
        assert_eq!(e.message(), "cannot write the batch");
        assert_eq!(e.to_string(), "cannot write the batch: disk full");
        assert_eq!(e.source().unwrap().to_string(), "disk full");
        assert!(
            !e.is_transient(),
            "converted errors are permanent by default"
        );

        let locked = BoltError::transient("metrics store")
            .with_source(std::io::Error::other("database is locked"));
        assert!(locked.is_transient());
        assert_eq!(locked.to_string(), "metrics store: database is locked");
        assert!(!locked.set_transient(false).is_transient());
        assert_eq!(BoltError::msg("plain").to_string(), "plain");
    }
}
