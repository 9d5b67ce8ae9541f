//! What an API command to a call can refuse. These are the caller's mistakes or races with the
//! call's own life; the API turns them into 4xx problems.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("the call has ended")]
    Ended,
    #[error("the call is not answered yet")]
    NotAnswered,
    #[error(
        "DTMF accepts 0-9, *, #, A-D and ',' (a pause); found {found:?} at position {position}"
    )]
    InvalidDtmf { position: usize, found: char },
    #[error("a DTMF string has at most {} characters", crate::dtmf::MAX_DTMF_LEN)]
    DtmfTooLong,
    #[error("too many DTMF digits are waiting to be sent")]
    DtmfQueueFull,
}
