//! Interning of JSON values into small ids, so model states hash and compare cheaply.
//!
//! A table is built per key before its search; JSON `null` (nil, absent) is always [`ValueId::NIL`].

use std::collections::HashMap;

use serde_json::Value;

/// A small id standing for one distinct JSON value within one [`ValueTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    /// The id of JSON `null`: nil, or absent.
    pub const NIL: ValueId = ValueId(0);
}

/// Maps JSON values to [`ValueId`]s and back.
#[derive(Debug, Clone)]
pub struct ValueTable {
    // Invariant: ids[canonical(values[i])] == i, and values[0] is null.
    ids: HashMap<String, ValueId>,
    values: Vec<Value>,
}

impl Default for ValueTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ValueTable {
    /// A table holding only `null`.
    pub fn new() -> Self {
        let mut table = ValueTable {
            ids: HashMap::new(),
            values: Vec::new(),
        };
        table.intern(&Value::Null);
        table
    }

    /// The id of `value`, assigning a new one on first sight. Equal JSON values (objects compared
    /// regardless of key order) get equal ids.
    pub fn intern(&mut self, value: &Value) -> ValueId {
        let canonical = value.to_string();
        if let Some(&id) = self.ids.get(&canonical) {
            return id;
        }
        let id = ValueId(u32::try_from(self.values.len()).expect("fewer than 2^32 values"));
        self.ids.insert(canonical, id);
        self.values.push(value.clone());
        id
    }

    /// The JSON value of an id from this table.
    ///
    /// # Panics
    /// If the id did not come from this table.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0 as usize]
    }

    /// A short human form: `nil` for null, the JSON text otherwise.
    pub fn describe(&self, id: ValueId) -> String {
        match self.value(id) {
            Value::Null => "nil".to_string(),
            other => other.to_string(),
        }
    }
}
