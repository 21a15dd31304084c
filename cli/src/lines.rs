//! Reading JSON Lines with a bound on each line, so one endless line cannot take all memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _};

/// Why the next line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line {line} is longer than {limit} bytes (see --max-line-bytes)")]
    TooLong { line: u64, limit: usize },
    #[error("line {line} is not UTF-8 (from byte {} of it, counting from 1)", at + 1)]
    NotUtf8 { line: u64, at: usize },
    #[error("reading line {line}: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Lines of at most `limit` bytes (the line break not counted), numbered from 1. A leading
/// UTF-8 byte order mark is dropped, and so is a `\r` before the `\n`.
pub struct BoundedLines<R> {
    reader: R,
    limit: usize,
    line: u64,
    /// Bytes consumed from the reader: the end of the line last returned.
    offset: u64,
    buffer: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    pub fn new(reader: R, limit: usize) -> BoundedLines<R> {
        BoundedLines {
            reader,
            limit,
            line: 0,
            offset: 0,
            buffer: Vec::new(),
        }
    }

    /// Lines of a reader already past `line` lines, at byte `offset` (a resumed run): the
    /// next line is numbered `line + 1`, and offsets count from the start of the input.
    pub fn resumed(mut self, line: u64, offset: u64) -> BoundedLines<R> {
        self.line = line;
        self.offset = offset;
        self
    }

    /// The byte offset just past the line last returned (its line break included).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The number of the line last returned.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The next line, `None` at the end of the input.
    pub async fn next_line(&mut self) -> Result<Option<String>, LineError> {
        self.buffer.clear();
        // Cannot wrap: a resumed count is checked against the input's size (state.rs).
        let line = self.line.saturating_add(1);
        let mut ended = false;
        loop {
            let available = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| LineError::Io { line, source })?;
            if available.is_empty() {
                break;
            }
            let (taken, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let content = if found { taken - 1 } else { taken };
            // `\r` may still come before the `\n`: allow one byte past the limit for it.
            if self.buffer.len() + content > self.limit + 1 {
                return Err(LineError::TooLong {
                    line,
                    limit: self.limit,
                });
            }
            self.buffer.extend_from_slice(&available[..content]);
            self.reader.consume(taken);
            self.offset += taken as u64;
            if found {
                ended = true;
                break;
            }
        }
        if !ended && self.buffer.is_empty() {
            return Ok(None);
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        if self.buffer.len() > self.limit {
            return Err(LineError::TooLong {
                line,
                limit: self.limit,
            });
        }
        self.line = line;
        let mut bytes = std::mem::take(&mut self.buffer);
        if line == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| LineError::NotUtf8 {
                line,
                at: e.utf8_error().valid_up_to(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], limit: usize) -> Vec<Result<String, String>> {
        let mut lines = BoundedLines::new(input, limit);
        let mut out = Vec::new();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn lines_end_at_newlines_with_or_without_carriage_returns() {
        let ok = |s: &str| Ok(s.to_string());
        assert_eq!(
            read_all(b"a\nbb\r\n\nccc", 3).await,
            vec![ok("a"), ok("bb"), ok(""), ok("ccc")]
        );
        assert_eq!(read_all(b"", 3).await, vec![]);
        assert_eq!(read_all(b"abc\r\n", 3).await, vec![ok("abc")]);
    }

    /// Issue 16: a 200 MB line was read whole, then trapped the guest.
    #[tokio::test]
    async fn a_line_past_the_limit_is_an_error_naming_it() {
        let got = read_all(b"ab\nabcd\nx", 3).await;
        assert_eq!(got[0], Ok("ab".to_string()));
        assert_eq!(
            got[1],
            Err("line 2 is longer than 3 bytes (see --max-line-bytes)".to_string())
        );
        assert_eq!(got.len(), 2);
        assert!(read_all(b"abcd\r\n", 3).await[0].is_err());
        // An endless line stops at the limit, without reading on.
        let mut endless =
            BoundedLines::new(tokio::io::BufReader::new(tokio::io::repeat(b'x')), 1 << 16);
        assert!(matches!(
            endless.next_line().await,
            Err(LineError::TooLong { line: 1, .. })
        ));
    }

    /// Issue 16: a leading byte order mark gave `malformed JSON`.
    #[tokio::test]
    async fn a_leading_byte_order_mark_is_dropped() {
        assert_eq!(
            read_all(b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF{}", 9).await,
            vec![Ok("{}".to_string()), Ok("\u{feff}{}".to_string())]
        );
        assert_eq!(
            read_all(b"{}\n\xff", 9).await[1],
            Err("line 2 is not UTF-8 (from byte 1 of it, counting from 1)".to_string())
        );
    }
}
