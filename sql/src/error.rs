//! Errors: [`SqlError`] for a query that cannot be planned (with its line
//! and column), [`EvalError`] for a row an expression cannot be computed on.

use sqlparser::tokenizer::Location;

/// A query that cannot be run, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SqlError {
    line: u64,
    column: u64,
    message: String,
}

impl SqlError {
    /// An error at 1-based `line` and `column`.
    pub fn new(line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
        }
    }

    pub(crate) fn at(location: Location, message: impl Into<String>) -> Self {
        Self::new(location.line, location.column, message)
    }

    /// 1-based line of the problem.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// 1-based column of the problem.
    pub fn column(&self) -> u64 {
        self.column
    }

    /// What is wrong and what is allowed, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Converts sqlparser's error, whose message ends in ` at Line: L, Column: C`
    /// (or has no position at the end of the input: then `end`).
    pub(crate) fn from_parser(error: &sqlparser::parser::ParserError, end: Location) -> Self {
        use sqlparser::parser::ParserError;
        let text = match error {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
            ParserError::RecursionLimitExceeded => "the query nests too deeply".to_owned(),
        };
        if let Some(index) = text.rfind(" at Line: ") {
            let (message, position) = text.split_at(index);
            let mut numbers = position
                .trim_start_matches(" at Line: ")
                .split(", Column: ")
                .map(|n| n.trim().parse::<u64>().unwrap_or(1));
            let line = numbers.next().unwrap_or(1);
            let column = numbers.next().unwrap_or(1);
            return Self::new(line, column, message.replace("Expected: ", "expected "));
        }
        Self::new(
            end.line,
            end.column,
            text.replace("Expected: ", "expected ")
                .replace("found: EOF", "found the end of the query"),
        )
    }
}

/// An expression could not be computed on a row (the row is skipped and
/// counted by the worker; the message says which operation and why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);
