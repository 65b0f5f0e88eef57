//! The error every part of a spec reports: the field's dotted path and
//! what is wrong with it. Its own module so the parts a spec is made of
//! (scheduler, recipe, objective) can name it without importing the spec.

use thiserror::Error;

/// A spec field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `budget.max_trials`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// An error in `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
