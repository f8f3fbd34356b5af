//! A linear pre-scan that bounds how deeply a YAML document nests, run
//! before the YAML library sees a text that could nest flow collections
//! too deeply, and to name the line of any document nested too deeply.
//!
//! Why it exists: the YAML library (libyaml, under `yaml_serde`) scans a
//! whole document into events before the deserialiser's recursion limit
//! applies, and while inside flow collections every token re-examines the
//! possible simple key of every open level. `{a: ` repeated 50,000 times
//! therefore costs time quadratic in the depth — 31–36 s for a 250 KB body
//! and minutes for 1 MB (issue 11) — and the same parser reads every file
//! of a git sync. Each open flow collection starts at a `[` or `{` byte,
//! so a text with no more than [`MAX_DEPTH`] of them cannot nest flow
//! collections that deep, and needs no scan
//! ([`may_nest_flow_deeply`]: a count the CPU does a vector at a time,
//! where the scan costs about a tenth of the library's own work — measured
//! in benches/README.md). Block nesting costs the library linear time; the
//! value tree refuses any collection deeper than [`MAX_DEPTH`] as it is
//! built (`yaml_value`), and the scan then names the line.
//!
//! The scan is a token-level shadow of libyaml's scanner: it follows the
//! same rules for where a token starts, what a quote, a comment, a block
//! scalar or a multi-line plain scalar covers, and which column each block
//! collection opens at (its `indent` stack and simple keys), so a bracket
//! inside text the library treats as a scalar is never counted and, more
//! importantly, text the library treats as structure is never skipped. It
//! builds nothing and touches each byte once. Where the library would stop
//! with an error, so does its work, and what the scan decides after that
//! does not matter.

/// The deepest nesting of collections (block and flow together) a
/// document may have. Definitions and compositions nest a handful of
/// levels; Kubernetes manifests about fifteen.
pub const MAX_DEPTH: usize = 64;

/// Whether `text` has more than [`MAX_DEPTH`] flow brackets (`[`, `{`),
/// so that its flow collections could nest deeper than that and it must
/// be scanned ([`check_nesting`]) before the YAML library reads it. A
/// bracket inside a scalar counts too: this only decides whether to scan.
pub(crate) fn may_nest_flow_deeply(text: &str) -> bool {
    let brackets: usize = text
        .as_bytes()
        .iter()
        .map(|&b| usize::from(b == b'[' || b == b'{'))
        .sum();
    brackets > MAX_DEPTH
}

/// Refuses text whose collections nest deeper than [`MAX_DEPTH`], in one
/// pass over its bytes.
pub(crate) fn check_nesting(text: &str) -> Result<(), String> {
    let mut scanner = Scanner::new(text.as_bytes());
    scanner.run().map_err(|()| {
        format!(
            "line {}: the document nests deeper than {MAX_DEPTH} levels; refused before parsing",
            scanner.line + 1
        )
    })
}

/// Where a possible simple key (an implicit mapping key) started.
#[derive(Debug, Clone, Copy)]
struct Mark {
    line: usize,
    column: usize,
    index: usize,
}

/// The scanner's state, mirroring libyaml's fields of the same names.
struct Scanner<'a> {
    text: &'a [u8],
    /// Byte position.
    pos: usize,
    /// Characters since the start of the line.
    column: usize,
    /// Lines before this one.
    line: usize,
    /// Characters since the start of the text.
    index: usize,
    /// Open flow collections.
    flow: usize,
    /// Column of the innermost block collection (-1 at the top level).
    indent: isize,
    /// The enclosing collections' indents.
    indents: Vec<isize>,
    /// Whether a simple key may start at the next token.
    simple_key_allowed: bool,
    /// The possible simple key of the block level (the one a `:` in block
    /// context opens a mapping at).
    block_key: Option<Mark>,
    /// The deepest nesting seen (for tests).
    deepest: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a [u8]) -> Self {
        Scanner {
            text,
            pos: 0,
            column: 0,
            line: 0,
            index: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            block_key: None,
            deepest: 0,
        }
    }

    fn at(&self, offset: usize) -> u8 {
        self.text.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.pos >= self.text.len()
    }

    /// Length of the line break at `pos + offset` (CR, LF, CRLF, NEL, LS,
    /// PS, as libyaml counts them), 0 when there is none.
    fn break_len(&self, offset: usize) -> usize {
        match (self.at(offset), self.at(offset + 1), self.at(offset + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8 | 0xA9) => 3,
            _ => 0,
        }
    }

    fn is_blank(&self, offset: usize) -> bool {
        matches!(self.at(offset), b' ' | b'\t')
    }

    /// A blank, a line break or the end of the text.
    fn is_blankz(&self, offset: usize) -> bool {
        self.pos + offset >= self.text.len() || self.is_blank(offset) || self.break_len(offset) > 0
    }

    /// Steps over one character (not a line break).
    fn skip(&mut self) {
        let width = match self.at(0) {
            b if b < 0x80 => 1,
            b if b >= 0xF0 => 4,
            b if b >= 0xE0 => 3,
            _ => 2,
        };
        self.pos = (self.pos + width).min(self.text.len());
        self.column += 1;
        self.index += 1;
    }

    /// Steps over a run of ASCII characters that are neither line breaks
    /// nor `stop`, all at once (each is one byte and one character wide),
    /// and says how long it was: the fast path through scalar text and
    /// comments, which are most of a document's bytes.
    fn skip_run(&mut self, stop: impl Fn(u8) -> bool) -> usize {
        let rest = &self.text[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b >= 0x80 || b == b'\r' || b == b'\n' || stop(b))
            .unwrap_or(rest.len());
        self.pos += n;
        self.column += n;
        self.index += n;
        n
    }

    /// Steps over the rest of the line, up to its line break.
    fn skip_line(&mut self) {
        loop {
            self.skip_run(|_| false);
            if self.eof() || self.break_len(0) > 0 {
                return;
            }
            self.skip(); // a character wider than a byte
        }
    }

    /// Steps over one line break.
    fn skip_break(&mut self) {
        self.pos += self.break_len(0).max(1);
        self.line += 1;
        self.column = 0;
        self.index += 1;
    }

    fn document_indicator(&self) -> bool {
        self.column == 0
            && (self.text[self.pos..].starts_with(b"---")
                || self.text[self.pos..].starts_with(b"..."))
            && self.is_blankz(3)
    }

    fn depth(&mut self) -> Result<(), ()> {
        let depth = self.indents.len() + self.flow;
        self.deepest = self.deepest.max(depth);
        if depth > MAX_DEPTH {
            Err(())
        } else {
            Ok(())
        }
    }

    /// A block collection starts at `column` if it is deeper than the current one.
    fn roll_indent(&mut self, column: usize) -> Result<(), ()> {
        if self.flow == 0 && self.indent < column as isize {
            self.indents.push(self.indent);
            self.indent = column as isize;
            self.depth()?;
        }
        Ok(())
    }

    /// Block collections deeper than `column` end.
    fn unroll_indent(&mut self, column: isize) {
        if self.flow > 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn save_simple_key(&mut self) {
        if self.flow == 0 && self.simple_key_allowed {
            self.block_key = Some(Mark {
                line: self.line,
                column: self.column,
                index: self.index,
            });
        }
    }

    /// A simple key must end on its line, within 1024 characters.
    fn stale_simple_keys(&mut self) {
        if let Some(k) = self.block_key {
            if k.line != self.line || k.index + 1024 < self.index {
                self.block_key = None;
            }
        }
    }

    fn run(&mut self) -> Result<(), ()> {
        loop {
            self.scan_to_next_token();
            if self.eof() {
                return Ok(());
            }
            let before = self.pos;
            self.stale_simple_keys();
            self.unroll_indent(self.column as isize);
            self.token()?;
            if self.pos == before {
                self.skip(); // a character no token starts with: the library stops here
            }
        }
    }

    /// Blanks, comments and line breaks up to the next token.
    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.pos..].starts_with(b"\xEF\xBB\xBF") {
                self.pos += 3;
            }
            while self.at(0) == b' '
                || ((self.flow > 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.skip();
            }
            if self.at(0) == b'#' {
                self.skip_line();
            }
            if !self.eof() && self.break_len(0) > 0 {
                self.skip_break();
                if self.flow == 0 {
                    self.simple_key_allowed = true;
                }
            } else {
                return;
            }
        }
    }

    fn token(&mut self) -> Result<(), ()> {
        if self.column == 0 && self.at(0) == b'%' {
            self.skip_line(); // a directive
            return Ok(());
        }
        if self.document_indicator() {
            self.unroll_indent(-1);
            self.indents.clear();
            self.flow = 0;
            self.block_key = None;
            self.simple_key_allowed = false;
            for _ in 0..3 {
                self.skip();
            }
            return Ok(());
        }
        let in_flow = self.flow > 0;
        match self.at(0) {
            b'[' | b'{' => {
                self.save_simple_key();
                self.flow += 1;
                self.depth()?;
                self.simple_key_allowed = true;
                self.skip();
            }
            b']' | b'}' => {
                self.flow = self.flow.saturating_sub(1);
                self.simple_key_allowed = false;
                self.skip();
            }
            b',' => {
                self.simple_key_allowed = true;
                self.skip();
            }
            b'-' if self.is_blankz(1) => {
                if !in_flow {
                    self.roll_indent(self.column)?;
                    self.block_key = None;
                }
                self.simple_key_allowed = true;
                self.skip();
            }
            b'?' if in_flow || self.is_blankz(1) => {
                if !in_flow {
                    self.roll_indent(self.column)?;
                    self.block_key = None;
                }
                self.simple_key_allowed = !in_flow;
                self.skip();
            }
            b':' if in_flow || self.is_blankz(1) => {
                if in_flow {
                    self.simple_key_allowed = false;
                } else if let Some(key) = self.block_key.take() {
                    self.roll_indent(key.column)?;
                    self.simple_key_allowed = false;
                } else {
                    self.roll_indent(self.column)?;
                    self.simple_key_allowed = true;
                }
                self.skip();
            }
            b'*' | b'&' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.skip();
                while self.at(0).is_ascii_alphanumeric() || matches!(self.at(0), b'_' | b'-') {
                    self.skip();
                }
            }
            b'!' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.tag();
            }
            b'|' | b'>' if !in_flow => {
                self.block_key = None;
                self.simple_key_allowed = true;
                self.block_scalar();
            }
            quote @ (b'\'' | b'"') => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.quoted(quote);
            }
            _ => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.plain();
            }
        }
        Ok(())
    }

    /// A tag: `!<verbatim>`, or a handle and suffix up to the next blank
    /// (the library stops with an error where its tag ends before one).
    fn tag(&mut self) {
        self.skip();
        if self.at(0) == b'<' {
            while !self.is_blankz(0) && self.at(0) != b'>' {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
            return;
        }
        while !(self.is_blankz(0) || (self.flow > 0 && self.at(0) == b',')) {
            self.skip();
        }
    }

    /// A single- or double-quoted scalar, line breaks included.
    fn quoted(&mut self, quote: u8) {
        self.skip();
        while !self.eof() {
            // Past a line's first column no document marker can start, so
            // only the quote, an escape or a break needs a closer look.
            if self.column > 0 && self.skip_run(|b| b == quote || b == b'\\') > 0 {
                continue;
            }
            if self.document_indicator() {
                return; // the library stops: a document marker inside quotes
            }
            match self.at(0) {
                b'\'' if quote == b'\'' && self.at(1) == b'\'' => {
                    self.skip();
                    self.skip();
                }
                b'\\' if quote == b'"' => {
                    self.skip();
                    if self.break_len(0) > 0 {
                        self.skip_break();
                    } else if !self.eof() {
                        self.skip();
                    }
                }
                c if c == quote => {
                    self.skip();
                    return;
                }
                _ if self.break_len(0) > 0 => self.skip_break(),
                _ => self.skip(),
            }
        }
    }

    /// A plain scalar: it continues on following lines indented deeper
    /// than the innermost block collection (any line, in flow context),
    /// until `: `, ` #`, a document marker, or in flow context `,[]{}`.
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            let mut ended = false;
            while !self.is_blankz(0) {
                // Text that cannot end the scalar, all at once.
                if self.skip_run(|b| {
                    matches!(b, b' ' | b'\t' | b':' | b',' | b'[' | b']' | b'{' | b'}')
                }) > 0
                {
                    leading_blanks = false;
                    continue;
                }
                let c = self.at(0);
                let flow_indicator = matches!(c, b',' | b'[' | b']' | b'{' | b'}');
                if (c == b':' && self.is_blankz(1))
                    || (self.flow > 0 && (flow_indicator || c == b':'))
                {
                    // In flow context `:` followed by an indicator is an
                    // error; followed by anything else it is text.
                    let next = self.at(1);
                    let text_colon = self.flow > 0
                        && c == b':'
                        && !self.is_blankz(1)
                        && !matches!(next, b',' | b'?' | b'[' | b']' | b'{' | b'}');
                    if !text_colon {
                        ended = true;
                        break;
                    }
                }
                self.skip();
                leading_blanks = false;
            }
            if ended || !(self.is_blank(0) || self.break_len(0) > 0) {
                break;
            }
            while self.is_blank(0) || self.break_len(0) > 0 {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_break();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.column as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// A literal or folded block scalar: its header, then every line
    /// indented at least as deep as its content (found from the header's
    /// indentation indicator, or from the first line that is not empty).
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0isize;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.skip(),
                d @ b'1'..=b'9' => {
                    increment = isize::from(d - b'0');
                    self.skip();
                }
                _ => break,
            }
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            self.skip_line();
        }
        if self.eof() || self.break_len(0) == 0 {
            return; // the library stops: text after a block scalar header
        }
        self.skip_break();
        let mut indent = if increment > 0 {
            self.indent.max(0) + increment
        } else {
            0
        };
        let mut max_indent = 0usize;
        self.block_breaks(indent, &mut max_indent);
        if indent == 0 {
            indent = (max_indent as isize).max(self.indent + 1).max(1);
        }
        while self.column as isize == indent && !self.eof() {
            self.skip_line();
            if self.eof() {
                break;
            }
            self.skip_break();
            self.block_breaks(indent, &mut max_indent);
        }
    }

    /// The indentation and empty lines before a block scalar's next line.
    fn block_breaks(&mut self, indent: isize, max_indent: &mut usize) {
        loop {
            while (indent == 0 || (self.column as isize) < indent) && self.at(0) == b' ' {
                self.skip();
            }
            *max_indent = (*max_indent).max(self.column);
            if self.eof() || self.break_len(0) == 0 {
                return;
            }
            self.skip_break();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(open: &str, close: &str, n: usize) -> String {
        format!("{}1{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_documents_pass() {
        for text in [
            "a: 1\nb: [1, 2, {c: d}]\n",
            "apiVersion: v1\nspec:\n  list:\n    - name: x\n      value: \"[unbalanced\"\n    - 'it''s [ fine'\n",
            "description: use [brackets] and {braces} freely\nnote: a # comment [[[[\n",
            "plain: starts here\n  and continues [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n  'still plain\nnext: 2\n",
            "k: \"multi\n  line [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n  quoted\"\n",
            "- - - - x\n",
            "{\"json\": [1, {\"a\": [2]}]}",
            "key: it's a plain scalar\nother: [a'b, c]\n",
        ] {
            assert_eq!(check_nesting(text), Ok(()), "{text}");
        }
        let literal = format!("text: |\n  {}\n  'quote\nnext: 1\n", "[".repeat(200));
        assert_eq!(check_nesting(&literal), Ok(()));
        assert!(check_nesting(&deep("[", "]", MAX_DEPTH)).is_ok());
    }

    #[test]
    fn deep_flow_and_block_nesting_is_refused() {
        assert!(check_nesting(&deep("{a: ", "}", 50_000)).is_err());
        assert!(check_nesting(&deep("[", "]", MAX_DEPTH + 1)).is_err());
        assert!(check_nesting(&format!("x: {}", deep("[", "]", 100))).is_err());
        assert!(check_nesting(&format!("{}x\n", "- ".repeat(MAX_DEPTH + 1))).is_err());
        let mut stairs = String::new();
        for i in 0..=MAX_DEPTH {
            stairs.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert!(check_nesting(&stairs).is_err());
        let err = check_nesting(&deep("{a: ", "}", 1000)).unwrap_err();
        assert!(err.contains("deeper than 64"), "{err}");
    }

    /// What a parse answers: the scan's refusal, at its line, whether the
    /// scan ran first (many brackets) or the value tree hit the limit.
    #[test]
    fn a_parse_refuses_what_is_too_deep_whichever_check_catches_it() {
        use crate::parse::parse_yaml_value;
        let scanned = |text: &str| format!("invalid YAML: {}", check_nesting(text).unwrap_err());
        let dashes = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
        let mut stairs = String::new();
        for i in 0..=MAX_DEPTH {
            stairs.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        let flow = deep("{a: ", "}", 1000);
        for text in [&dashes, &stairs, &flow] {
            assert_eq!(parse_yaml_value(text).unwrap_err(), scanned(text));
        }
        assert!(!may_nest_flow_deeply(&dashes) && !may_nest_flow_deeply(&stairs));
        assert!(
            scanned(&stairs).contains("line 65:"),
            "{}",
            scanned(&stairs)
        );
        // Deep and broken: the depth is what it reports.
        let broken = format!("{stairs}{}: ]\n", " ".repeat(MAX_DEPTH + 1));
        assert_eq!(parse_yaml_value(&broken).unwrap_err(), scanned(&broken));
        // One level less passes.
        let shallower = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        assert!(parse_yaml_value(&shallower).is_ok());
        // A single-pair mapping in a flow sequence is a level without a
        // bracket: the scan lets this through, the tree does not.
        let pairs = deep("[a: ", "]", 40);
        assert!(check_nesting(&pairs).is_ok() && !may_nest_flow_deeply(&pairs));
        let err = parse_yaml_value(&pairs).unwrap_err();
        assert!(err.contains("nests deeper than 64 levels"), "{err}");
        // Brackets in a scalar are counted, so the text is scanned, and pass.
        let quoted = format!("a: \"{}\"\n", "[".repeat(200));
        assert!(may_nest_flow_deeply(&quoted));
        assert!(parse_yaml_value(&quoted).is_ok());
    }

    #[test]
    fn quotes_comments_and_scalars_cannot_hide_nesting() {
        let nest = deep("[", "]", 100);
        for text in [
            // A quote inside a plain scalar opens nothing.
            format!("a: it's\nb: {nest}\n"),
            format!("[a', {nest}]"),
            format!("a: x#'\nb: {nest}\n"),
            // A comment ends at any of the library's line breaks.
            format!("a: 1 # note\u{2028}b: {nest}\n"),
            format!("a: 1 # note\rb: {nest}\n"),
            // A block scalar ends at a line indented no deeper than its
            // collection, though its header line was a sequence item.
            format!("- k: |\n    text\n  other: {nest}\n"),
            format!("k: |\n  text\n# c\nb: {nest}\n"),
            format!("k: |\n    deep\n  shallower: {nest}\n"),
            // A plain scalar ends where its collection's next key starts.
            format!("- k: v\n  j: {nest}\n"),
            // Quotes open only where tokens start, in flow context too.
            format!("{{a: b'c, d: {nest}}}"),
            format!("k: {{\"a\":'x', b: {nest}}}"),
            format!("[a:'x, {nest}]"),
            // Closers inside quotes do not lower the count.
            format!("{}1{}", "{a: ']', b: ".repeat(100), "}".repeat(100)),
            // Anchors and tags before a collection.
            format!("k: &a !t {nest}"),
        ] {
            assert!(check_nesting(&text).is_err(), "not refused: {text:.80}");
        }
    }

    /// The deepest nesting of a parsed value.
    fn value_depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
            serde_json::Value::Object(m) => 1 + m.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// A small deterministic generator (xorshift), so the test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The library and the scan agree on random YAML-shaped text: whatever
    /// the library parses nests no deeper than the scan says (a single-pair
    /// mapping in a flow sequence adds a level without a bracket, hence the
    /// factor of two).
    #[test]
    fn the_scan_never_undercounts_what_the_library_builds() {
        const PIECES: [&str; 24] = [
            "[", "]", "{", "}", ", ", ": ", ":", " ", "\n", "\n  ", "\n    ", "- ", "'", "\"", "#",
            "a", "b c", "|\n", ">-\n", "? ", "&x ", "!t ", "\t", "''",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _ in 0..60_000 {
            let len = 4 + rng.next() % 40;
            let text: String = (0..len)
                .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
                .collect();
            let mut scanner = Scanner::new(text.as_bytes());
            let scanned = scanner.run();
            if let Ok(value) = serde_yaml::from_str::<serde_json::Value>(&text) {
                checked += 1;
                assert!(
                    scanned.is_ok(),
                    "refused what the library nests shallowly: {text:?}"
                );
                assert!(
                    value_depth(&value) <= 2 * scanner.deepest + 1,
                    "the scan says {} for {text:?}, the library built {}",
                    scanner.deepest,
                    value_depth(&value)
                );
            }
        }
        assert!(checked > 1000, "only {checked} random documents parsed");
    }

    #[test]
    fn large_documents_are_scanned_whole() {
        // The worst shape, 4 MiB of it, is refused at its 65th level;
        // a flat 3 MiB list passes. (Its speed is measured in benches/attacks.)
        assert!(check_nesting(&"{a: ".repeat(1024 * 1024)).is_err());
        let flat = format!("[{}1]", "1, ".repeat(1024 * 1024));
        assert!(check_nesting(&flat).is_ok());
    }
}
