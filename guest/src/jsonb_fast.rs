//! jsonb's common case in one pass, straight into the payload, with no tree: strings without
//! escapes, numbers in range, nesting within reason. An object whose keys come sorted and
//! unique (most do) is written as it is read; any other is rebuilt from its entries' bytes,
//! sorted by key, the last of equal keys kept. Anything else gives `None`, and the caller
//! takes the full path (jsonb.rs), which also words the errors.

use nats_sink_rules::append::append;

use crate::json_num::write_f64;
use crate::json_str::escape_lanes;

/// Deeper nesting goes to the full path, which applies serde_json's own limit (128).
const MAX_DEPTH: u32 = 100;

/// How the text is spelled: the quote around strings (`\"` inside a JSON string), the item
/// separator and what follows a key.
pub struct Spelling {
    pub quote: &'static [u8],
    pub separator: &'static [u8],
    pub colon: &'static [u8],
}

/// One object entry: its key (a span of the input, unescaped since it had no escapes) and its
/// bytes in the output, key to value.
#[derive(Clone, Copy)]
struct Entry {
    key_start: usize,
    key_end: usize,
    start: usize,
    end: usize,
}

/// Scratch space reused from value to value.
#[derive(Default)]
pub struct Fast {
    /// The entries of the objects still open, innermost last.
    entries: Vec<Entry>,
    /// An unsorted object's entries, rebuilt in key order.
    rebuilt: Vec<u8>,
}

impl Fast {
    /// Append `text` as jsonbb prints it, or leave `out` as it was and return `None`.
    pub fn write(&mut self, text: &str, spelling: &Spelling, out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        self.entries.clear();
        let mut parser = Parser {
            input: text.as_bytes(),
            at: 0,
            fast: self,
            spelling,
            out,
        };
        parser.whitespace();
        let parsed = parser.value(0).and_then(|()| {
            parser.whitespace();
            (parser.at == parser.input.len()).then_some(())
        });
        if parsed.is_none() {
            out.truncate(start);
        }
        parsed
    }
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
    fast: &'a mut Fast,
    spelling: &'a Spelling,
    out: &'a mut Vec<u8>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += found as usize;
        found
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                let (start, end) = self.string()?;
                self.quoted(start, end);
                Some(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Option<()> {
        self.input[self.at..].starts_with(word).then_some(())?;
        self.at += word.len();
        append(self.out, word);
        Some(())
    }

    /// The span of a string's text, which must need no unescaping; `at` is at its quote.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.at + 1;
        let mut at = start;
        while let Some(chunk) = self
            .input
            .get(at..)
            .and_then(|rest| rest.first_chunk::<8>())
        {
            let lanes = escape_lanes(u64::from_le_bytes(*chunk));
            if lanes != 0 {
                at += (lanes.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        while self
            .input
            .get(at)
            .is_some_and(|&b| b >= 0x20 && b != b'"' && b != b'\\')
        {
            at += 1;
        }
        // A `\` or a control character (invalid unescaped) is for the full path.
        (self.input.get(at) == Some(&b'"')).then_some(())?;
        self.at = at + 1;
        Some((start, at))
    }

    /// A string with no `"`, `\` or control character needs no escaping, here or in the
    /// JSON string the text form goes into.
    fn quoted(&mut self, start: usize, end: usize) {
        append(self.out, self.spelling.quote);
        append(self.out, &self.input[start..end]);
        append(self.out, self.spelling.quote);
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }

    /// A number as serde_json reads it for jsonbb: an integer within u64 (or down to -2^63)
    /// is kept exactly, and printed as spelled; anything else is a correctly rounded double.
    fn number(&mut self) -> Option<()> {
        let start = self.at;
        let negative = self.eat(b'-');
        let digits = self.at;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        let integer = &self.input[digits..self.at];
        let mut float = false;
        if self.eat(b'.') {
            float = true;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
        }
        let spelled = &self.input[start..self.at];
        if !float {
            let magnitude = integer.iter().try_fold(0u64, |m, &d| {
                m.checked_mul(10)?.checked_add((d - b'0') as u64)
            });
            // serde_json reads `-0` as the double -0.0, and what i64 cannot hold as a double.
            let exact = magnitude.is_some_and(|m| !negative || (m != 0 && m <= 1 << 63));
            if exact {
                append(self.out, spelled);
                return Some(());
            }
        }
        // Rust's parse is correctly rounded, as serde_json's with float_roundtrip is.
        let value: f64 = std::str::from_utf8(spelled).ok()?.parse().ok()?;
        // Out of range: serde_json refuses it, with its own message.
        value.is_finite().then_some(())?;
        write_f64(self.out, value);
        Some(())
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        (depth <= MAX_DEPTH).then_some(())?;
        self.at += 1;
        self.out.push(b'[');
        self.whitespace();
        if !self.eat(b']') {
            loop {
                self.value(depth)?;
                self.whitespace();
                if self.eat(b']') {
                    break;
                }
                (self.eat(b',')).then_some(())?;
                append(self.out, self.spelling.separator);
                self.whitespace();
            }
        }
        self.out.push(b']');
        Some(())
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        (depth <= MAX_DEPTH).then_some(())?;
        self.at += 1;
        self.out.push(b'{');
        let body = self.out.len();
        let mark = self.fast.entries.len();
        let mut sorted = true;
        self.whitespace();
        if !self.eat(b'}') {
            loop {
                (self.peek() == Some(b'"')).then_some(())?;
                let (key_start, key_end) = self.string()?;
                self.whitespace();
                (self.eat(b':')).then_some(())?;
                self.whitespace();
                let start = self.out.len();
                self.quoted(key_start, key_end);
                append(self.out, self.spelling.colon);
                self.value(depth)?;
                let key = &self.input[key_start..key_end];
                if let Some(last) = self.fast.entries[mark..].last() {
                    sorted &= &self.input[last.key_start..last.key_end] < key;
                }
                self.fast.entries.push(Entry {
                    key_start,
                    key_end,
                    start,
                    end: self.out.len(),
                });
                self.whitespace();
                if self.eat(b'}') {
                    break;
                }
                (self.eat(b',')).then_some(())?;
                append(self.out, self.spelling.separator);
                self.whitespace();
            }
        }
        if !sorted {
            self.sort(mark, body);
        }
        self.fast.entries.truncate(mark);
        self.out.push(b'}');
        Some(())
    }

    /// Rewrite the object whose entries start at `mark` and whose bytes start at `body` in
    /// jsonbb's order: keys sorted bytewise (a stable sort), the last of equal keys kept.
    fn sort(&mut self, mark: usize, body: usize) {
        let input = self.input;
        let key = |e: &Entry| &input[e.key_start..e.key_end];
        let entries = &mut self.fast.entries[mark..];
        entries.sort_by(|a, b| key(a).cmp(key(b)));
        let rebuilt = &mut self.fast.rebuilt;
        rebuilt.clear();
        for (i, entry) in entries.iter().enumerate() {
            if entries
                .get(i + 1)
                .is_some_and(|next| key(next) == key(entry))
            {
                continue;
            }
            if !rebuilt.is_empty() {
                append(rebuilt, self.spelling.separator);
            }
            append(rebuilt, &self.out[entry.start..entry.end]);
        }
        self.out.truncate(body);
        append(self.out, rebuilt);
    }
}
