//! Field paths into a JSON value: `after.rating` is the field `rating` of the
//! object in the field `after`. Parsed once when the chain is built.

use serde_json::{Map, Value};

/// A parsed, non-empty path of field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    names: Box<[String]>,
    text: String,
}

impl FieldPath {
    /// Parses `a.b.c`; every name must be non-empty.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let names: Box<[String]> = text.split('.').map(str::to_owned).collect();
        if names.iter().any(String::is_empty) {
            return Err(format!(
                "'{text}' is not a field path: names are separated by single dots, e.g. after.rating"
            ));
        }
        Ok(Self {
            names,
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The last name of the path.
    pub(crate) fn leaf(&self) -> &str {
        self.names.last().map_or("", String::as_str)
    }

    /// The names of the path.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The value at this path, if every step is an object holding the name.
    pub(crate) fn get<'a>(&self, root: &'a Map<String, Value>) -> Option<&'a Value> {
        let (last, parents) = self.names.split_last()?;
        let mut map = root;
        for name in parents {
            map = map.get(name)?.as_object()?;
        }
        map.get(last)
    }

    /// The value at this path, mutably.
    pub(crate) fn get_mut<'a>(&self, root: &'a mut Map<String, Value>) -> Option<&'a mut Value> {
        let (map, last) = self.parent_mut(root)?;
        map.get_mut(last)
    }

    /// The object holding the last name, and that name.
    pub(crate) fn parent_mut<'a, 'p>(
        &'p self,
        root: &'a mut Map<String, Value>,
    ) -> Option<(&'a mut Map<String, Value>, &'p str)> {
        let (last, parents) = self.names.split_last()?;
        let mut map = root;
        for name in parents {
            map = map.get_mut(name)?.as_object_mut()?;
        }
        Some((map, last))
    }

    /// Removes the field, keeping the order of the others.
    pub(crate) fn remove(&self, root: &mut Map<String, Value>) -> Option<Value> {
        let (map, last) = self.parent_mut(root)?;
        map.shift_remove(last)
    }

    /// Sets the field, creating missing parent objects. Fails (naming the
    /// blocking field) when a parent exists but is not an object.
    pub(crate) fn set(&self, root: &mut Map<String, Value>, value: Value) -> Result<(), String> {
        let Some((last, parents)) = self.names.split_last() else {
            return Ok(());
        };
        let mut map = root;
        for (depth, name) in parents.iter().enumerate() {
            let slot = map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            map = match slot {
                Value::Object(inner) => inner,
                other => {
                    return Err(format!(
                        "cannot set {}: {} is {}, not an object",
                        self.text,
                        self.names[..=depth].join("."),
                        type_name(other)
                    ));
                }
            };
        }
        map.insert(last.clone(), value);
        Ok(())
    }
}

/// The JSON type of a value, with an article, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value shortened for an error message (records may be large; the
/// message goes into a dead-letter header).
pub(crate) fn excerpt(value: &Value) -> String {
    const MAX: usize = 64;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn reads_nested_fields() {
        let row = object(json!({"after": {"rating": 2, "tags": ["a"]}, "op": "c"}));
        let path = FieldPath::parse("after.rating").unwrap();
        assert_eq!(path.get(&row), Some(&json!(2)));
        assert_eq!(path.leaf(), "rating");
        assert_eq!(FieldPath::parse("op").unwrap().get(&row), Some(&json!("c")));
        assert_eq!(FieldPath::parse("after.tags.x").unwrap().get(&row), None);
        assert_eq!(FieldPath::parse("before.id").unwrap().get(&row), None);
    }

    #[test]
    fn refuses_empty_names() {
        assert_eq!(FieldPath::parse("").unwrap_err(), "must not be empty");
        assert_eq!(
            FieldPath::parse("after..id").unwrap_err(),
            "'after..id' is not a field path: names are separated by single dots, e.g. after.rating"
        );
        assert!(FieldPath::parse(".id").is_err());
        assert!(FieldPath::parse("id.").is_err());
    }

    #[test]
    fn set_creates_parents_and_remove_keeps_order() {
        let mut row = object(json!({"a": 1, "b": 2, "c": 3}));
        FieldPath::parse("meta.source")
            .unwrap()
            .set(&mut row, json!("pg"))
            .unwrap();
        assert_eq!(FieldPath::parse("b").unwrap().remove(&mut row), Some(json!(2)));
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"a":1,"c":3,"meta":{"source":"pg"}}"#
        );
        let error = FieldPath::parse("a.x")
            .unwrap()
            .set(&mut row, json!(1))
            .unwrap_err();
        assert_eq!(error, "cannot set a.x: a is a number, not an object");
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        assert_eq!(excerpt(&json!("abc")), "\"abc\"");
        let long = excerpt(&json!("x".repeat(100)));
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }
}
