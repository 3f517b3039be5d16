//! From text to sqlparser's AST plus the streaming clauses.
//!
//! The query is tokenized once by sqlparser (every token keeps its line and
//! column). At nesting depth 0, `WINDOW TUMBLING|HOPPING|SESSION ( … )`, a
//! join's `WITHIN <n unit> | (<n unit>, <n unit>) [GRACE PERIOD <n unit>]`
//! and a final `EMIT CHANGES|FINAL` are read here and removed; the remaining tokens
//! go to sqlparser's parser (generic dialect), so positions in its errors
//! stay those of the original text.

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::error::SqlError;
use crate::plan::{Emit, JoinWindow};
use crate::window::Window;

/// A parsed query before planning.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub statement: Statement,
    pub window: Option<(Window, Location)>,
    pub emit: Option<(Emit, Location)>,
    /// A stream-stream join's time bound, with the position of `WITHIN`.
    pub within: Option<(JoinWindow, Location)>,
}

const WINDOW_KINDS: &str = "TUMBLING, HOPPING or SESSION";

#[allow(clippy::too_many_lines)] // one pass over the tokens, read top to bottom
pub(crate) fn parse(sql: &str) -> Result<Parsed, SqlError> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location, e.message))?;
    let mut kept = Vec::with_capacity(tokens.len());
    let mut window = None;
    let mut emit: Option<(Emit, Location)> = None;
    let mut within: Option<(JoinWindow, Location)> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && is_word(&token.token, "WINDOW") {
            let mut cursor = Cursor {
                tokens: &tokens,
                at: i + 1,
            };
            if let Some(kind) = cursor.peek_word()
                && ["TUMBLING", "HOPPING", "SESSION"].contains(&kind.as_str())
            {
                if window.is_some() {
                    return Err(SqlError::at(
                        token.span.start,
                        "only one WINDOW clause is allowed",
                    ));
                }
                let parsed = window_clause(&mut cursor)?;
                window = Some((parsed, token.span.start));
                i = cursor.at;
                continue;
            }
            return Err(SqlError::at(
                cursor.location(),
                format!("expected {WINDOW_KINDS} after WINDOW, e.g. WINDOW TUMBLING (SIZE 1 MINUTE)"),
            ));
        }
        if depth == 0 && is_word(&token.token, "WITHIN") {
            if within.is_some() {
                return Err(SqlError::at(
                    token.span.start,
                    "only one WITHIN is allowed (one join per query)",
                ));
            }
            let mut cursor = Cursor {
                tokens: &tokens,
                at: i + 1,
            };
            within = Some((within_clause(&mut cursor)?, token.span.start));
            i = cursor.at;
            continue;
        }
        if depth == 0 && is_word(&token.token, "EMIT") {
            let mut cursor = Cursor {
                tokens: &tokens,
                at: i + 1,
            };
            let mode = match cursor.peek_word().as_deref() {
                Some("CHANGES") => Emit::Changes,
                Some("FINAL") => Emit::Final,
                _ => {
                    return Err(SqlError::at(
                        cursor.location(),
                        "expected CHANGES or FINAL after EMIT",
                    ));
                }
            };
            cursor.next();
            emit = Some((mode, token.span.start));
            i = cursor.at;
            continue;
        }
        if let Some((_, at)) = &emit
            && !matches!(token.token, Token::Whitespace(_) | Token::SemiColon | Token::EOF)
        {
            return Err(SqlError::at(
                token.span.start,
                format!(
                    "EMIT (line {}, column {}) must end the query; move this after the query or before EMIT",
                    at.line, at.column
                ),
            ));
        }
        kept.push(token.clone());
        i += 1;
    }
    // Where "the end of the query" is: just after its last token.
    let end = kept
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map_or(Location { line: 1, column: 1 }, |t| Location {
            line: t.span.end.line,
            column: t.span.end.column,
        });
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(kept);
    let mut statements = parser
        .parse_statements()
        .map_err(|e| SqlError::from_parser(&e, end))?;
    let statement = match statements.len() {
        1 => statements.remove(0),
        0 => {
            return Err(SqlError::new(
                1,
                1,
                "the query is empty: expected SELECT or INSERT INTO <topic> SELECT",
            ));
        }
        _ => {
            return Err(SqlError::new(
                1,
                1,
                format!("a Stream holds one query; found {} statements", statements.len()),
            ));
        }
    };
    Ok(Parsed {
        statement,
        window,
        emit,
        within,
    })
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Walks tokens, skipping whitespace.
struct Cursor<'a> {
    tokens: &'a [TokenWithSpan],
    at: usize,
}

impl Cursor<'_> {
    fn skip_whitespace(&mut self) {
        while self
            .tokens
            .get(self.at)
            .is_some_and(|t| matches!(t.token, Token::Whitespace(_)))
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<&TokenWithSpan> {
        self.skip_whitespace();
        self.tokens.get(self.at)
    }

    /// The next token as an upper-cased unquoted word.
    fn peek_word(&mut self) -> Option<String> {
        match self.peek().map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<&TokenWithSpan> {
        self.skip_whitespace();
        let token = self.tokens.get(self.at);
        self.at += 1;
        token
    }

    fn location(&mut self) -> Location {
        let fallback = self
            .tokens
            .last()
            .map_or(Location { line: 1, column: 1 }, |t| t.span.end);
        self.peek().map_or(fallback, |t| t.span.start)
    }

    fn describe(&mut self) -> String {
        match self.peek().map(|t| &t.token) {
            None | Some(Token::EOF) => "the end of the query".to_owned(),
            Some(token) => format!("`{token}`"),
        }
    }

    fn expect_word(&mut self, word: &str, context: &str) -> Result<(), SqlError> {
        if self.peek_word().as_deref() == Some(word) {
            self.next();
            return Ok(());
        }
        let found = self.describe();
        Err(SqlError::at(
            self.location(),
            format!("expected {word} {context}, found {found}"),
        ))
    }

    fn expect(&mut self, token: &Token, context: &str) -> Result<(), SqlError> {
        if self.peek().is_some_and(|t| &t.token == token) {
            self.next();
            return Ok(());
        }
        let found = self.describe();
        Err(SqlError::at(
            self.location(),
            format!("expected `{token}` {context}, found {found}"),
        ))
    }

    /// `<number> <unit>`, e.g. `1 MINUTE` or `500 MILLISECONDS`, in milliseconds.
    fn duration(&mut self, what: &str) -> Result<u64, SqlError> {
        let location = self.location();
        let number = match self.peek().map(|t| &t.token) {
            Some(Token::Number(n, _)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let Some(number) = number else {
            let found = self.describe();
            return Err(SqlError::at(
                location,
                format!("expected a whole number for {what} (e.g. 1 MINUTE), found {found}"),
            ));
        };
        self.next();
        let unit_location = self.location();
        let unit = self.peek_word().unwrap_or_default();
        let factor: u64 = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1,
            "SECOND" => 1_000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => {
                let found = self.describe();
                return Err(SqlError::at(
                    unit_location,
                    format!(
                        "expected a time unit after {number} in {what} (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS), found {found}"
                    ),
                ));
            }
        };
        self.next();
        number
            .checked_mul(factor)
            .filter(|ms| i64::try_from(*ms).is_ok())
            .ok_or_else(|| SqlError::at(location, format!("{what} is too long")))
    }

    /// `GRACE PERIOD <duration>` when it comes next (0 otherwise).
    fn optional_grace(&mut self) -> Result<u64, SqlError> {
        if self.peek_word().as_deref() != Some("GRACE") {
            return Ok(0);
        }
        self.next();
        self.expect_word("PERIOD", "after GRACE")?;
        self.duration("the grace period")
    }

    /// `, GRACE PERIOD <duration>` (optional) and the closing parenthesis.
    fn grace_and_close(&mut self) -> Result<u64, SqlError> {
        let mut grace = 0;
        if self.peek().is_some_and(|t| t.token == Token::Comma) {
            self.next();
            self.expect_word("GRACE", "(only GRACE PERIOD may follow here)")?;
            self.expect_word("PERIOD", "after GRACE")?;
            grace = self.duration("the grace period")?;
        }
        self.expect(&Token::RParen, "closing the WINDOW clause")?;
        Ok(grace)
    }
}

/// `TUMBLING (SIZE d [, GRACE PERIOD d])`, `HOPPING (SIZE d, ADVANCE BY d [, GRACE PERIOD d])`
/// or `SESSION (d [, GRACE PERIOD d])`.
fn window_clause(cursor: &mut Cursor<'_>) -> Result<Window, SqlError> {
    let kind = cursor.peek_word().unwrap_or_default();
    cursor.next();
    cursor.expect(&Token::LParen, &format!("after WINDOW {kind}"))?;
    match kind.as_str() {
        "TUMBLING" => {
            cursor.expect_word("SIZE", "in WINDOW TUMBLING (SIZE 1 MINUTE)")?;
            let location = cursor.location();
            let size_ms = cursor.duration("the window size")?;
            if size_ms == 0 {
                return Err(SqlError::at(
                    location,
                    "the window size must be greater than zero",
                ));
            }
            let grace_ms = cursor.grace_and_close()?;
            Ok(Window::Tumbling { size_ms, grace_ms })
        }
        "HOPPING" => {
            cursor.expect_word("SIZE", "in WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE)")?;
            let size_location = cursor.location();
            let size_ms = cursor.duration("the window size")?;
            cursor.expect(&Token::Comma, "after the window size (ADVANCE BY follows)")?;
            cursor.expect_word(
                "ADVANCE",
                "in WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE)",
            )?;
            cursor.expect_word("BY", "after ADVANCE")?;
            let advance_location = cursor.location();
            let advance_ms = cursor.duration("the advance")?;
            if size_ms == 0 {
                return Err(SqlError::at(
                    size_location,
                    "the window size must be greater than zero",
                ));
            }
            if advance_ms == 0 || advance_ms > size_ms {
                return Err(SqlError::at(
                    advance_location,
                    "the advance must be greater than zero and at most the window size",
                ));
            }
            if size_ms / advance_ms > 1000 {
                return Err(SqlError::at(
                    advance_location,
                    "a record would belong to more than 1000 windows; use a larger advance",
                ));
            }
            let grace_ms = cursor.grace_and_close()?;
            Ok(Window::Hopping {
                size_ms,
                advance_ms,
                grace_ms,
            })
        }
        _ => {
            let location = cursor.location();
            let gap_ms = cursor.duration("the session gap (inactivity that ends a session)")?;
            if gap_ms == 0 {
                return Err(SqlError::at(
                    location,
                    "the session gap must be greater than zero",
                ));
            }
            let grace_ms = cursor.grace_and_close()?;
            Ok(Window::Session { gap_ms, grace_ms })
        }
    }
}

/// `WITHIN d [GRACE PERIOD g]` or `WITHIN (before, after) [GRACE PERIOD g]`
/// (the cursor is just after `WITHIN`): a joined row's event time may be up
/// to `before` earlier and `after` later than the FROM row's.
fn within_clause(cursor: &mut Cursor<'_>) -> Result<JoinWindow, SqlError> {
    let (before_ms, after_ms) = if cursor.peek().is_some_and(|t| t.token == Token::LParen) {
        cursor.next();
        let before = cursor.duration("WITHIN's first bound (how much earlier the joined row may be)")?;
        cursor.expect(
            &Token::Comma,
            "between WITHIN's two bounds, e.g. WITHIN (1 MINUTE, 5 MINUTES)",
        )?;
        let after = cursor.duration("WITHIN's second bound (how much later the joined row may be)")?;
        cursor.expect(&Token::RParen, "closing WITHIN (before, after)")?;
        (before, after)
    } else {
        let bound =
            cursor.duration("WITHIN (the time bound of a stream-stream join, e.g. WITHIN 5 MINUTES)")?;
        (bound, bound)
    };
    let grace_ms = cursor.optional_grace()?;
    Ok(JoinWindow {
        before_ms,
        after_ms,
        grace_ms,
    })
}
