use std::fmt;

/// Which size limit a peer went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// A `framed` frame body.
    Frame,
    /// A `line` line (without its `\n`).
    Line,
    /// An HTTP request or status line plus headers.
    HeaderBlock,
    /// An HTTP body.
    Body,
    /// A RESP bulk string (`$<len>`).
    Bulk,
    /// A RESP array (`*<len>`).
    MultiBulk,
    /// A RESP inline command.
    Inline,
    /// A RESP array's count line (`*<count>\r\n`), measured against the inline limit.
    MultiBulkCountLine,
    /// A RESP bulk string's length line (`$<len>\r\n`), measured against the inline limit.
    BulkCountLine,
    /// A datagram.
    Datagram,
    /// A client's whole reply: every byte it holds of one reply (a RESP array's elements and nested arrays
    /// together, an HTTP head and body, a frame, a line), against
    /// [`BufferConfig::max_reply`](crate::BufferConfig::max_reply).
    Reply,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Frame => "frame",
            Limit::Line => "line",
            Limit::HeaderBlock => "header block",
            Limit::Body => "body",
            Limit::Bulk => "bulk string",
            Limit::MultiBulk => "multibulk array",
            Limit::Inline => "inline command",
            Limit::MultiBulkCountLine => "multibulk count line",
            Limit::BulkCountLine => "bulk length line",
            Limit::Datagram => "datagram",
            Limit::Reply => "reply",
        })
    }
}

/// The error every codec returns.
///
/// `TooLarge` and `Protocol` mean the stream can no longer be trusted: the connection should answer what the
/// protocol says (if anything) and close.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A peer announced or sent more than a limit allows. Nothing was allocated for it.
    #[error("{what} of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Which limit.
        what: Limit,
        /// The announced or observed size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes do not follow the protocol. The message is the one the protocol's reference server would
    /// send (for RESP, Redis's own wording after `Protocol error: `).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl CodecError {
    /// A protocol error with this message.
    pub fn protocol(msg: impl Into<String>) -> Self {
        CodecError::Protocol(msg.into())
    }

    /// True when the error is a size limit.
    pub fn is_too_large(&self) -> bool {
        matches!(self, CodecError::TooLarge { .. })
    }
}
