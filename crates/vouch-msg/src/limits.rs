//! Explicit size and count limits applied while parsing and framing.

/// Limits on what the parser accepts. Exceeding one is a [`crate::ParseError`], never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line, headers and body) in bytes. Larger gets 513.
    pub max_message_size: usize,
    /// Most header fields (lines, after unfolding) in one message.
    pub max_headers: usize,
    /// Longest header field (after unfolding) or start line, in bytes.
    pub max_line_length: usize,
    /// Most Via values in one message.
    pub max_vias: usize,
}

impl Limits {
    /// The defaults: 64 KiB messages, 256 headers, 8 KiB lines, 64 Vias.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 64 * 1024,
        max_headers: 256,
        max_line_length: 8 * 1024,
        max_vias: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
