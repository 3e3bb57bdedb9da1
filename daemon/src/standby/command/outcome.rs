//! What a command did, for the API to render.

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What happened, for the operator.
    pub message: String,
    /// Recovery points the command deleted.
    pub points_deleted: u64,
}

impl Outcome {
    pub(super) fn new(message: String, points_deleted: u64) -> Self {
        Self { message, points_deleted }
    }
}
