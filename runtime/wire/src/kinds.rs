//! What a regular message is, from its type byte: the frontend and backend
//! messages of protocol 3.0 as enums, so the session matches on names
//! instead of bytes. Decoding stays lazy: a kind says what the frame is,
//! and only the messages policy needs are decoded further (`messages`);
//! every other frame is forwarded as the bytes it came in.

use crate::frame::Frame;

/// A message a client sends after startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// `Q`: a simple query.
    Query,
    /// `P`: Parse.
    Parse,
    /// `B`: Bind.
    Bind,
    /// `D`: Describe a statement or portal.
    Describe,
    /// `E`: Execute a portal.
    Execute,
    /// `C`: Close a statement or portal.
    Close,
    /// `S`: Sync.
    Sync,
    /// `H`: Flush.
    Flush,
    /// `X`: Terminate.
    Terminate,
    /// `d`: CopyData.
    CopyData,
    /// `c`: CopyDone.
    CopyDone,
    /// `f`: CopyFail.
    CopyFail,
    /// `F`: a fast-path function call.
    FunctionCall,
    /// `p`: a password, SASL or GSS response (during authentication).
    Authentication,
    /// Any other type byte.
    Unknown(u8),
}

impl Frontend {
    /// The kind of a frontend message with type byte `tag`.
    pub fn of(tag: u8) -> Frontend {
        match tag {
            b'Q' => Frontend::Query,
            b'P' => Frontend::Parse,
            b'B' => Frontend::Bind,
            b'D' => Frontend::Describe,
            b'E' => Frontend::Execute,
            b'C' => Frontend::Close,
            b'S' => Frontend::Sync,
            b'H' => Frontend::Flush,
            b'X' => Frontend::Terminate,
            b'd' => Frontend::CopyData,
            b'c' => Frontend::CopyDone,
            b'f' => Frontend::CopyFail,
            b'F' => Frontend::FunctionCall,
            b'p' => Frontend::Authentication,
            other => Frontend::Unknown(other),
        }
    }
}

/// A message the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `R`: an authentication request or result.
    Authentication,
    /// `K`: BackendKeyData.
    BackendKeyData,
    /// `S`: ParameterStatus.
    ParameterStatus,
    /// `Z`: ReadyForQuery.
    ReadyForQuery,
    /// `1`: ParseComplete.
    ParseComplete,
    /// `2`: BindComplete.
    BindComplete,
    /// `3`: CloseComplete.
    CloseComplete,
    /// `t`: ParameterDescription.
    ParameterDescription,
    /// `T`: RowDescription.
    RowDescription,
    /// `n`: NoData.
    NoData,
    /// `D`: DataRow.
    DataRow,
    /// `C`: CommandComplete.
    CommandComplete,
    /// `I`: EmptyQueryResponse.
    EmptyQuery,
    /// `s`: PortalSuspended (an Execute's row limit reached).
    PortalSuspended,
    /// `E`: ErrorResponse.
    Error,
    /// `N`: NoticeResponse.
    Notice,
    /// `A`: NotificationResponse.
    Notification,
    /// `G`: CopyInResponse.
    CopyIn,
    /// `H`: CopyOutResponse.
    CopyOut,
    /// `W`: CopyBothResponse.
    CopyBoth,
    /// `d`: CopyData.
    CopyData,
    /// `c`: CopyDone.
    CopyDone,
    /// `V`: FunctionCallResponse.
    FunctionCallResponse,
    /// `v`: NegotiateProtocolVersion.
    NegotiateProtocolVersion,
    /// Any other type byte.
    Unknown(u8),
}

impl Backend {
    /// The kind of a backend message with type byte `tag`.
    pub fn of(tag: u8) -> Backend {
        match tag {
            b'R' => Backend::Authentication,
            b'K' => Backend::BackendKeyData,
            b'S' => Backend::ParameterStatus,
            b'Z' => Backend::ReadyForQuery,
            b'1' => Backend::ParseComplete,
            b'2' => Backend::BindComplete,
            b'3' => Backend::CloseComplete,
            b't' => Backend::ParameterDescription,
            b'T' => Backend::RowDescription,
            b'n' => Backend::NoData,
            b'D' => Backend::DataRow,
            b'C' => Backend::CommandComplete,
            b'I' => Backend::EmptyQuery,
            b's' => Backend::PortalSuspended,
            b'E' => Backend::Error,
            b'N' => Backend::Notice,
            b'A' => Backend::Notification,
            b'G' => Backend::CopyIn,
            b'H' => Backend::CopyOut,
            b'W' => Backend::CopyBoth,
            b'd' => Backend::CopyData,
            b'c' => Backend::CopyDone,
            b'V' => Backend::FunctionCallResponse,
            b'v' => Backend::NegotiateProtocolVersion,
            other => Backend::Unknown(other),
        }
    }
}

/// The transaction status a ReadyForQuery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (statements refused until it ends).
    Failed,
}

impl TransactionStatus {
    /// The status of a ReadyForQuery body (`None` when it is not one of the
    /// three the protocol defines).
    pub fn of(byte: u8) -> Option<TransactionStatus> {
        match byte {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    /// The status byte as sent.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// What a Describe or Close names: a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    /// The target of a Describe or Close body's first byte.
    pub fn of(byte: u8) -> Option<Target> {
        match byte {
            b'S' => Some(Target::Statement),
            b'P' => Some(Target::Portal),
            _ => None,
        }
    }
}

impl Frame {
    /// This frame as a client message.
    pub fn frontend(&self) -> Frontend {
        Frontend::of(self.tag)
    }

    /// This frame as a server message.
    pub fn backend(&self) -> Backend {
        Backend::of(self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_tag_round_trips_and_the_rest_are_unknown() {
        let mut frontend = 0;
        let mut backend = 0;
        for tag in 0..=u8::MAX {
            if !matches!(Frontend::of(tag), Frontend::Unknown(t) if t == tag) {
                frontend += 1;
            }
            if !matches!(Backend::of(tag), Backend::Unknown(t) if t == tag) {
                backend += 1;
            }
        }
        // Protocol 3.0: 14 frontend messages after startup, 24 backend ones.
        assert_eq!((frontend, backend), (14, 24));
        assert_eq!(Frontend::of(b'Q'), Frontend::Query);
        assert_eq!(Backend::of(b'Z'), Backend::ReadyForQuery);
        for s in [
            TransactionStatus::Idle,
            TransactionStatus::InTransaction,
            TransactionStatus::Failed,
        ] {
            assert_eq!(TransactionStatus::of(s.byte()), Some(s));
        }
        assert_eq!(TransactionStatus::of(b'X'), None);
        assert_eq!(Target::of(b'S'), Some(Target::Statement));
        assert_eq!(Target::of(b'x'), None);
    }
}
