//! The filter expression language: a small boolean language over one record,
//! parsed once into a tree and evaluated per record without allocating.
//!
//! Grammar (keywords are case-insensitive):
//!
//! ```text
//! expr       = or
//! or         = and { ("or" | "||") and }
//! and        = not { ("and" | "&&") not }
//! not        = ("not" | "!") not | comparison
//! comparison = operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
//!                      | ["not"] "in" "[" literal { "," literal } "]"
//!                      | "is" ["not"] "null" ]
//! operand    = literal | path | "(" expr ")"
//! literal    = string | number | "true" | "false" | "null"
//! string     = "'" … "'" | '"' … '"'        (escapes: \\ \' \" \n \t)
//! number     = ["-"] digits ["." digits] [("e" | "E") ["+" | "-"] digits]
//! path       = name { "." name }
//! name       = letter or "_", then letters, digits, "_" | "`" any text "`"
//! ```
//!
//! A path names a field of the record value (`after.rating`), except when
//! it starts with one of the record's own names: `value` (the whole value,
//! null for a tombstone), `key`, `topic`, `partition`, `offset`, `timestamp`
//! (ms since the epoch, null when absent). Write `value.topic` for a value
//! field called `topic`.
//!
//! Semantics: a missing field is null. `==`/`!=` compare any two values
//! (numbers by value, so `1 == 1.0`); `<`, `<=`, `>`, `>=` compare two
//! numbers or two strings and are false for anything else (like SQL, a
//! null never satisfies an ordering). A field used as a condition is true
//! only when it holds the boolean `true`.
//!
//! The parser is hand-written (recursive descent, ~400 lines): the grammar
//! is a dozen rules, and owning it keeps error messages exact ("expected a
//! value after '<', found the end of the expression at column 10") without a
//! parser-generator dependency or a second expression language (CEL, ksql)
//! whose full semantics we would have to document and support.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

use crate::record::Record;

/// A syntax error with its 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where, counted in characters from 1.
    pub column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Literal),
    Path(Path),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare(Box<Expr>, CompareOp, Box<Expr>),
    In {
        operand: Box<Expr>,
        list: Vec<Literal>,
        negated: bool,
    },
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Path {
    /// Names into the value (empty: the whole value).
    Value(Vec<String>),
    /// Names into the key (empty: the whole key).
    Key(Vec<String>),
    Topic,
    Partition,
    Offset,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A name; `quoted` names (in backquotes) are never keywords.
    Name {
        text: String,
        quoted: bool,
    },
    Str(String),
    Number(Literal),
    Compare(CompareOp),
    And,
    Or,
    Bang,
    Minus,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name { text, quoted: false } => format!("'{text}'"),
            Token::Name { text, quoted: true } => format!("'`{text}`'"),
            Token::Str(s) => format!("the string '{s}'"),
            Token::Number(Literal::Int(i)) => format!("the number {i}"),
            Token::Number(Literal::Float(f)) => format!("the number {f}"),
            Token::Number(_) => "a number".to_owned(),
            Token::Compare(op) => format!("'{}'", op.symbol()),
            Token::And => "'&&'".to_owned(),
            Token::Or => "'||'".to_owned(),
            Token::Bang => "'!'".to_owned(),
            Token::Minus => "'-'".to_owned(),
            Token::Dot => "'.'".to_owned(),
            Token::Comma => "','".to_owned(),
            Token::LParen => "'('".to_owned(),
            Token::RParen => "')'".to_owned(),
            Token::LBracket => "'['".to_owned(),
            Token::RBracket => "']'".to_owned(),
        }
    }

    /// True for an unquoted name equal (ignoring case) to `keyword`.
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Name { text, quoted: false } if text.eq_ignore_ascii_case(keyword))
    }
}

/// A token and its 1-based column.
type Spanned = (Token, usize);

fn err<T>(message: impl Into<String>, column: usize) -> Result<T, ParseError> {
    Err(ParseError {
        message: message.into(),
        column,
    })
}

fn lex(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        let (token, width) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            '[' => (Token::LBracket, 1),
            ']' => (Token::RBracket, 1),
            ',' => (Token::Comma, 1),
            '.' => (Token::Dot, 1),
            '-' => (Token::Minus, 1),
            '=' if next == Some('=') => (Token::Compare(CompareOp::Eq), 2),
            '=' => return err("'=' is not an operator: write '==' to compare", column),
            '!' if next == Some('=') => (Token::Compare(CompareOp::Ne), 2),
            '!' => (Token::Bang, 1),
            '<' if next == Some('=') => (Token::Compare(CompareOp::Le), 2),
            '<' if next == Some('>') => (Token::Compare(CompareOp::Ne), 2),
            '<' => (Token::Compare(CompareOp::Lt), 1),
            '>' if next == Some('=') => (Token::Compare(CompareOp::Ge), 2),
            '>' => (Token::Compare(CompareOp::Gt), 1),
            '&' if next == Some('&') => (Token::And, 2),
            '|' if next == Some('|') => (Token::Or, 2),
            '\'' | '"' => {
                let (s, width) = lex_string(&chars, i)?;
                (Token::Str(s), width)
            }
            '`' => {
                let Some(end) = chars[i + 1..].iter().position(|&c| c == '`') else {
                    return err("unterminated quoted name (missing closing '`')", column);
                };
                if end == 0 {
                    return err("empty quoted name", column);
                }
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                (Token::Name { text, quoted: true }, end + 2)
            }
            c if c.is_ascii_digit() => lex_number(&chars, i)?,
            c if c.is_alphabetic() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .count();
                let text: String = chars[i..i + len].iter().collect();
                (Token::Name { text, quoted: false }, len)
            }
            c => return err(format!("unexpected character '{c}'"), column),
        };
        tokens.push((token, column));
        i += width;
    }
    Ok(tokens)
}

fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                let escaped = match chars.get(i + 1) {
                    Some('\\') => '\\',
                    Some('\'') => '\'',
                    Some('"') => '"',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(other) => {
                        return err(
                            format!("unknown escape '\\{other}' (use \\\\, \\', \\\", \\n or \\t)"),
                            i + 1,
                        );
                    }
                    None => break,
                };
                out.push(escaped);
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1 - start)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    err(
        format!("unterminated string (missing closing {quote})"),
        start + 1,
    )
}

fn lex_number(chars: &[char], start: usize) -> Result<(Token, usize), ParseError> {
    let digits = |from: usize| chars[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = start + digits(start);
    let mut float = false;
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
        end += 1 + digits(end + 1);
        float = true;
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut exp = end + 1;
        if matches!(chars.get(exp), Some('+' | '-')) {
            exp += 1;
        }
        let n = digits(exp);
        if n == 0 {
            return err("expected digits after the exponent", exp + 1);
        }
        end = exp + n;
        float = true;
    }
    if chars.get(end).is_some_and(|c| c.is_alphabetic() || *c == '_') {
        return err("a name cannot start with a digit", start + 1);
    }
    let text: String = chars[start..end].iter().collect();
    let literal = if float {
        Literal::Float(text.parse().map_err(|_| ParseError {
            message: format!("'{text}' is not a number"),
            column: start + 1,
        })?)
    } else if let Ok(int) = text.parse::<i64>() {
        Literal::Int(int)
    } else {
        // Too large for i64: compare as a float, as JSON numbers that large are.
        Literal::Float(text.parse().map_err(|_| ParseError {
            message: format!("'{text}' is not a number"),
            column: start + 1,
        })?)
    };
    Ok((Token::Number(literal), end - start))
}

// ---------------------------------------------------------------- parser

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
    /// Column just past the last character, for "found the end" errors.
    end_column: usize,
}

/// Parses an expression.
pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = lex(text)?;
    let end_column = text.chars().count() + 1;
    if tokens.is_empty() {
        return err("the expression is empty", 1);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end_column,
    };
    let expr = parser.or()?;
    if let Some((token, column)) = parser.peek() {
        return err(
            format!(
                "expected 'and', 'or' or the end of the expression, found {}",
                token.describe()
            ),
            *column,
        );
    }
    Ok(expr)
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.pos)
    }

    fn peek_token(&self) -> Option<&Token> {
        self.peek().map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.peek().map_or(self.end_column, |(_, c)| *c)
    }

    fn found(&self) -> String {
        self.peek_token()
            .map_or_else(|| "the end of the expression".to_owned(), Token::describe)
    }

    fn advance(&mut self) -> Option<Spanned> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek_token().is_some_and(|t| t.is_keyword(keyword)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        while self.peek_token() == Some(&Token::Or) || self.peek_token().is_some_and(|t| t.is_keyword("or")) {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.not()?];
        while self.peek_token() == Some(&Token::And) || self.peek_token().is_some_and(|t| t.is_keyword("and"))
        {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek_token() == Some(&Token::Bang) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand(None)?;
        match self.peek_token() {
            Some(Token::Compare(op)) => {
                let op = *op;
                self.pos += 1;
                let right = self.operand(Some(op.symbol()))?;
                Ok(Expr::Compare(Box::new(left), op, Box::new(right)))
            }
            Some(t) if t.is_keyword("in") => {
                self.pos += 1;
                self.in_list(left, false)
            }
            Some(t)
                if t.is_keyword("not")
                    && self
                        .tokens
                        .get(self.pos + 1)
                        .is_some_and(|(t, _)| t.is_keyword("in")) =>
            {
                self.pos += 2;
                self.in_list(left, true)
            }
            Some(t) if t.is_keyword("is") => {
                self.pos += 1;
                let negated = self.eat_keyword("not");
                if !self.eat_keyword("null") {
                    return err(
                        format!("expected 'null' or 'not null' after 'is', found {}", self.found()),
                        self.column(),
                    );
                }
                Ok(Expr::IsNull {
                    operand: Box::new(left),
                    negated,
                })
            }
            _ => Ok(left),
        }
    }

    fn in_list(&mut self, operand: Expr, negated: bool) -> Result<Expr, ParseError> {
        if self.peek_token() != Some(&Token::LBracket) {
            return err(
                format!(
                    "expected a list like ['a', 'b'] after 'in', found {}",
                    self.found()
                ),
                self.column(),
            );
        }
        self.pos += 1;
        let mut list = Vec::new();
        loop {
            let column = self.column();
            match self.literal()? {
                Some(literal) => list.push(literal),
                None => {
                    return err(
                        format!(
                            "expected a string, number, true, false or null in the list, found {}",
                            self.found()
                        ),
                        column,
                    );
                }
            }
            match self.advance() {
                Some((Token::Comma, _)) => {}
                Some((Token::RBracket, _)) => break,
                other => {
                    let (found, column) = describe(other.as_ref(), self.end_column);
                    return err(format!("expected ',' or ']' in the list, found {found}"), column);
                }
            }
        }
        Ok(Expr::In {
            operand: Box::new(operand),
            list,
            negated,
        })
    }

    /// A literal at the current position, if there is one.
    fn literal(&mut self) -> Result<Option<Literal>, ParseError> {
        let literal = match self.peek_token() {
            Some(Token::Str(s)) => Literal::Str(s.clone()),
            Some(Token::Number(n)) => n.clone(),
            Some(Token::Minus) => {
                let negative = match self.tokens.get(self.pos + 1) {
                    Some((Token::Number(Literal::Int(i)), _)) => Literal::Int(-*i),
                    Some((Token::Number(Literal::Float(f)), _)) => Literal::Float(-*f),
                    _ => return err("'-' must be followed by a number", self.column()),
                };
                self.pos += 2;
                return Ok(Some(negative));
            }
            Some(t) if t.is_keyword("true") => Literal::Bool(true),
            Some(t) if t.is_keyword("false") => Literal::Bool(false),
            Some(t) if t.is_keyword("null") => Literal::Null,
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(literal))
    }

    /// An operand; `after` names the operator before it, for messages.
    fn operand(&mut self, after: Option<&str>) -> Result<Expr, ParseError> {
        if let Some(literal) = self.literal()? {
            return Ok(Expr::Literal(literal));
        }
        let column = self.column();
        match self.peek_token() {
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek_token() != Some(&Token::RParen) {
                    return err(
                        format!(
                            "expected ')' to close the '(' at column {column}, found {}",
                            self.found()
                        ),
                        self.column(),
                    );
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Name { text, quoted }) if *quoted || !is_reserved(text) => self.path(),
            _ => {
                let context = after.map_or_else(String::new, |op| format!(" after '{op}'"));
                err(
                    format!(
                        "expected a field, a value or '('{context}, found {}",
                        self.found()
                    ),
                    column,
                )
            }
        }
    }

    fn path(&mut self) -> Result<Expr, ParseError> {
        let mut names = Vec::new();
        let mut first_column = 0;
        let mut first_quoted = false;
        loop {
            match self.advance() {
                Some((Token::Name { text, quoted }, column)) => {
                    if names.is_empty() {
                        first_column = column;
                        first_quoted = quoted;
                    }
                    names.push(text);
                }
                other => {
                    let (found, column) = describe(other.as_ref(), self.end_column);
                    return err(format!("expected a field name after '.', found {found}"), column);
                }
            }
            if self.peek_token() == Some(&Token::Dot) {
                self.pos += 1;
            } else {
                break;
            }
        }
        let root = if first_quoted { "" } else { names[0].as_str() };
        let scalar = |path: Path, name: &str| -> Result<Expr, ParseError> {
            if names.len() > 1 {
                return err(
                    format!("{name} has no fields (write value.{name} for a value field called {name})"),
                    first_column,
                );
            }
            Ok(Expr::Path(path))
        };
        match root {
            "value" => Ok(Expr::Path(Path::Value(names[1..].to_vec()))),
            "key" => Ok(Expr::Path(Path::Key(names[1..].to_vec()))),
            "topic" => scalar(Path::Topic, "topic"),
            "partition" => scalar(Path::Partition, "partition"),
            "offset" => scalar(Path::Offset, "offset"),
            "timestamp" => scalar(Path::Timestamp, "timestamp"),
            _ => Ok(Expr::Path(Path::Value(names))),
        }
    }
}

/// What a token (or the end) is, and where, for messages.
fn describe(token: Option<&Spanned>, end_column: usize) -> (String, usize) {
    token.map_or_else(
        || ("the end of the expression".to_owned(), end_column),
        |(t, c)| (t.describe(), *c),
    )
}

/// Keywords that cannot start a path unquoted.
fn is_reserved(name: &str) -> bool {
    ["and", "or", "not", "in", "is", "null", "true", "false"]
        .iter()
        .any(|k| name.eq_ignore_ascii_case(k))
}

// ---------------------------------------------------------------- evaluation

/// A value during evaluation, borrowed from the record or the expression.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// An array or object.
    Json(&'a Value),
}

impl<'a> Val<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => number(n),
            Value::String(s) => Val::Str(s),
            other => Val::Json(other),
        }
    }

    fn of_literal(literal: &'a Literal) -> Self {
        match literal {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Int(i) => Val::Int(*i),
            Literal::Float(f) => Val::Float(*f),
            Literal::Str(s) => Val::Str(s),
        }
    }

    fn truthy(self) -> bool {
        matches!(self, Val::Bool(true))
    }
}

fn number(n: &Number) -> Val<'_> {
    match n.as_i64() {
        Some(i) => Val::Int(i),
        None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

#[allow(clippy::cast_precision_loss)] // comparing an i64 with a float is done in floats, as JSON does
fn order(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Int(x), Val::Float(y)) => (x as f64).partial_cmp(&y),
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(y as f64)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(&y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => x == y,
        _ => order(a, b) == Some(Ordering::Equal),
    }
}

impl Expr {
    /// True when the record satisfies the expression.
    pub(crate) fn matches(&self, record: &Record) -> bool {
        self.eval(record).truthy()
    }

    fn eval<'a>(&'a self, record: &'a Record) -> Val<'a> {
        match self {
            Expr::Literal(literal) => Val::of_literal(literal),
            Expr::Path(path) => resolve(path, record),
            Expr::Not(inner) => Val::Bool(!inner.eval(record).truthy()),
            Expr::And(terms) => Val::Bool(terms.iter().all(|t| t.eval(record).truthy())),
            Expr::Or(terms) => Val::Bool(terms.iter().any(|t| t.eval(record).truthy())),
            Expr::Compare(left, op, right) => {
                let (a, b) = (left.eval(record), right.eval(record));
                Val::Bool(match op {
                    CompareOp::Eq => equal(a, b),
                    CompareOp::Ne => !equal(a, b),
                    CompareOp::Lt => order(a, b) == Some(Ordering::Less),
                    CompareOp::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
                    CompareOp::Gt => order(a, b) == Some(Ordering::Greater),
                    CompareOp::Ge => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
                })
            }
            Expr::In {
                operand,
                list,
                negated,
            } => {
                let a = operand.eval(record);
                let found = list.iter().any(|l| equal(a, Val::of_literal(l)));
                Val::Bool(found != *negated)
            }
            Expr::IsNull { operand, negated } => {
                let null = matches!(operand.eval(record), Val::Null);
                Val::Bool(null != *negated)
            }
        }
    }
}

fn resolve<'a>(path: &'a Path, record: &'a Record) -> Val<'a> {
    let walk = |root: Option<&'a Value>, names: &'a [String]| -> Val<'a> {
        let Some(mut current) = root else {
            return Val::Null;
        };
        for name in names {
            match current.as_object().and_then(|o| o.get(name)) {
                Some(next) => current = next,
                None => return Val::Null,
            }
        }
        Val::of(current)
    };
    match path {
        Path::Value(names) => walk(record.value.as_ref(), names),
        Path::Key(names) => walk(record.key.as_ref(), names),
        Path::Topic => Val::Str(&record.topic),
        Path::Partition => Val::Int(i64::from(record.partition)),
        Path::Offset => Val::Int(record.offset),
        Path::Timestamp => record.timestamp_ms.map_or(Val::Null, Val::Int),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Value) -> Record {
        Record {
            topic: "shop.public.ratings".into(),
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(json!({"id": 7})),
            value: Some(value),
            headers: Vec::new(),
        }
    }

    fn eval(expression: &str, value: &Value) -> bool {
        parse(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .matches(&record(value.clone()))
    }

    fn error(expression: &str) -> String {
        parse(expression).unwrap_err().to_string()
    }

    #[test]
    fn compares_numbers_strings_and_bools() {
        let v = json!({"after": {"rating": 2, "price": 9.5, "region": "eu", "vip": true}, "op": "c"});
        assert!(eval("after.rating < 3", &v));
        assert!(!eval("after.rating < 2", &v));
        assert!(eval("after.rating <= 2", &v));
        assert!(eval("after.rating >= 2 and after.rating > 1", &v));
        assert!(eval("after.rating == 2.0", &v));
        assert!(eval("after.price > 9", &v));
        assert!(eval("after.price < 9.75", &v));
        assert!(eval("after.price != 9", &v));
        assert!(eval("after.rating > -1", &v));
        assert!(eval("after.price < 1e3", &v));
        assert!(eval("op == 'c'", &v));
        assert!(eval("op == \"c\"", &v));
        assert!(eval("op <> 'd'", &v));
        assert!(eval("after.region > 'de'", &v));
        assert!(eval("after.vip", &v));
        assert!(eval("after.vip == true", &v));
        assert!(!eval("after.region", &v), "a string is not a condition");
    }

    #[test]
    fn different_types_never_order_and_never_equal() {
        let v = json!({"rating": "2", "n": null});
        assert!(!eval("rating < 3", &v));
        assert!(!eval("rating >= 3", &v));
        assert!(!eval("rating == 2", &v));
        assert!(eval("rating != 2", &v));
        assert!(!eval("n < 3", &v));
        assert!(!eval("missing > 0", &v));
        assert!(!eval("missing == 0", &v));
    }

    #[test]
    fn null_checks_and_missing_fields() {
        let v = json!({"before": null, "after": {"id": 1}});
        assert!(eval("before == null", &v));
        assert!(eval("before is null", &v));
        assert!(eval("nothing.at.all is null", &v));
        assert!(eval("after is not null", &v));
        assert!(eval("after != null", &v));
        assert!(eval("after.id IS NOT NULL", &v));
        assert!(!eval("after.id is null", &v));
    }

    #[test]
    fn lists_and_boolean_logic() {
        let v = json!({"value": "inner", "region": "eu", "rating": 4, "deleted": false});
        assert!(eval("value.region in ['eu', 'us']", &v));
        assert!(eval("region in ['eu','us']", &v));
        assert!(!eval("region not in ['eu', 'us']", &v));
        assert!(eval("rating in [1, 4.0, null]", &v));
        assert!(eval("region == 'eu' and (rating < 2 or rating > 3)", &v));
        assert!(eval("not deleted", &v));
        assert!(eval("!deleted && rating == 4", &v));
        assert!(eval("deleted || rating == 4", &v));
        assert!(eval("NOT (region == 'us') AND rating >= 4", &v));
        assert!(eval("not not (rating == 4)", &v));
        assert!(eval("not !(rating == 4)", &v));
        assert!(eval("!!(rating == 4)", &v));
        assert!(!eval("not !deleted", &v));
        assert!(eval("`region` == 'eu'", &v));
        assert!(eval("value.value == 'inner'", &v));
        // `or` binds looser than `and`.
        assert!(eval("rating == 1 and region == 'us' or rating == 4", &v));
        assert!(!eval("rating == 1 and (region == 'us' or rating == 4)", &v));
    }

    #[test]
    fn record_names_reach_the_record() {
        let v = json!({"id": 1});
        assert!(eval("topic == 'shop.public.ratings'", &v));
        assert!(eval("partition == 3 and offset == 42", &v));
        assert!(eval("timestamp > 1600000000000", &v));
        assert!(eval("key.id == 7", &v));
        assert!(eval("value is not null", &v));
        let tombstone = Record {
            value: None,
            ..record(json!({}))
        };
        assert!(parse("value is null").unwrap().matches(&tombstone));
        assert!(!parse("id == 1").unwrap().matches(&tombstone));
        let untimed = Record {
            timestamp_ms: None,
            ..record(json!({}))
        };
        assert!(parse("timestamp is null").unwrap().matches(&untimed));
    }

    #[test]
    fn strings_escape_quotes() {
        let v = json!({"comment": "it's \"ok\"\n"});
        assert!(eval(r#"comment == 'it\'s "ok"\n'"#, &v));
        assert!(eval(r#"comment == "it's \"ok\"\n""#, &v));
    }

    #[test]
    fn objects_compare_whole() {
        let v = json!({"tags": ["a"], "same": ["a"]});
        assert!(eval("tags == same", &v));
        assert!(!eval("tags < same", &v));
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        assert_eq!(
            error("after.rating <"),
            "expected a field, a value or '(' after '<', found the end of the expression at column 15"
        );
        assert_eq!(
            error("after.rating = 3"),
            "'=' is not an operator: write '==' to compare at column 14"
        );
        assert_eq!(
            error("op == 'd"),
            "unterminated string (missing closing ') at column 7"
        );
        assert_eq!(
            error("rating < 3 3"),
            "expected 'and', 'or' or the end of the expression, found the number 3 at column 12"
        );
        assert_eq!(
            error("(rating < 3"),
            "expected ')' to close the '(' at column 1, found the end of the expression at column 12"
        );
        assert_eq!(
            error("region in 'eu'"),
            "expected a list like ['a', 'b'] after 'in', found the string 'eu' at column 11"
        );
        assert_eq!(
            error("region in ['eu' 'us']"),
            "expected ',' or ']' in the list, found the string 'us' at column 17"
        );
        assert_eq!(
            error("region in [other]"),
            "expected a string, number, true, false or null in the list, found 'other' at column 12"
        );
        assert_eq!(
            error("after is nothing"),
            "expected 'null' or 'not null' after 'is', found 'nothing' at column 10"
        );
        assert_eq!(error("after.#x == 1"), "unexpected character '#' at column 7");
        assert_eq!(
            error("after. == 1"),
            "expected a field name after '.', found '==' at column 8"
        );
        assert_eq!(
            error("topic.name == 'x'"),
            "topic has no fields (write value.topic for a value field called topic) at column 1"
        );
        assert_eq!(error("   "), "the expression is empty at column 1");
        assert_eq!(
            error("rating < -x"),
            "'-' must be followed by a number at column 10"
        );
        assert_eq!(
            error("rating > 3x"),
            "a name cannot start with a digit at column 10"
        );
        assert_eq!(
            error("and rating"),
            "expected a field, a value or '(', found 'and' at column 1"
        );
        assert_eq!(
            error("comment == 'a\\qb'"),
            "unknown escape '\\q' (use \\\\, \\', \\\", \\n or \\t) at column 14"
        );
        assert_eq!(error("x == 1e"), "expected digits after the exponent at column 8");
        assert_eq!(
            error("`unclosed == 1"),
            "unterminated quoted name (missing closing '`') at column 1"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(
            error("région == 'é' ="),
            "'=' is not an operator: write '==' to compare at column 15"
        );
    }
}
