//! What a deployment knows about a customer besides their behaviour (the
//! **profile**: age, country, products held), and what a request may carry
//! about itself (its **attributes** and **metrics**: intent, page, basket
//! size).
//!
//! A `profile` event (the vocabulary's `profile_event`) sets the customer's
//! latest values: a category or set field from its `attributes` (a set as a
//! comma-separated list; an empty string clears the field), a number field
//! from its `metrics`. Only declared fields are kept, each in one or a few
//! 4-byte slots of the customer's state (a set field one slot per 24 values,
//! an unset number −∞),
//! so the profile is bounded whatever producers send.

use std::collections::BTreeMap;

use crate::{Names, Rejection};

/// The type and domain of one profile field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// A number; context features scale it over [min, max].
    Number {
        /// Lowest value that matters.
        min: f64,
        /// Highest value that matters.
        max: f64,
    },
    /// One of the declared values.
    Category(Names),
    /// Any subset of the declared values (e.g. products held).
    Set(Names),
}

/// One declared profile field.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileField {
    /// Its name (`profile.<name>` in rules and context).
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
}

impl ProfileField {
    /// State slots the field takes.
    pub(crate) fn slots(&self) -> usize {
        match &self.kind {
            FieldKind::Set(values) => values.len().div_ceil(SET_BITS_PER_SLOT).max(1),
            _ => 1,
        }
    }
}

/// An unset number field (a value the intake never accepts, and unlike NaN
/// equal to itself, so states compare).
pub(crate) const UNSET_NUMBER: f32 = f32::NEG_INFINITY;

/// Bits of a set field kept in one `f32` slot: integers up to 2^24 are exact.
pub(crate) const SET_BITS_PER_SLOT: usize = 24;

/// The declared profile fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSpec {
    /// In declaration order (the order of their slots).
    pub fields: Vec<ProfileField>,
}

impl ProfileSpec {
    /// Position of the field called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&ProfileField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks a profile event's fields: every key a declared field of the
    /// right type, every value declared (numbers finite).
    pub fn check_update(
        &self,
        attributes: &BTreeMap<String, String>,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), Rejection> {
        if attributes.is_empty() && metrics.is_empty() {
            return Err(Rejection::new(
                "a profile event sets no field: put category and set fields in attributes, number fields in metrics",
            ));
        }
        let declared = || {
            self.fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, value) in attributes {
            let field = self.field(name).ok_or_else(|| {
                Rejection::new(format!(
                    "profile field {name:?} is not declared (declared: {})",
                    declared()
                ))
            })?;
            let values = match &field.kind {
                FieldKind::Number { .. } => {
                    return Err(Rejection::new(format!(
                        "profile field {name:?} is a number: send it in metrics, not attributes"
                    )));
                }
                FieldKind::Category(values) => {
                    if !value.is_empty() && !values.contains(value) {
                        return Err(undeclared_value(name, value, values));
                    }
                    continue;
                }
                FieldKind::Set(values) => values,
            };
            for item in set_items(value) {
                if !values.contains(item) {
                    return Err(undeclared_value(name, item, values));
                }
            }
        }
        for (name, value) in metrics {
            match self.field(name).map(|f| &f.kind) {
                Some(FieldKind::Number { .. }) if value.is_finite() => {}
                Some(FieldKind::Number { .. }) => {
                    return Err(Rejection::new(format!(
                        "profile field {name:?} = {value} is not a finite number"
                    )));
                }
                Some(_) => {
                    return Err(Rejection::new(format!(
                        "profile field {name:?} is not a number: send it in attributes, not metrics"
                    )));
                }
                None => {
                    return Err(Rejection::new(format!(
                        "profile field {name:?} is not declared (declared: {})",
                        declared()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes a checked profile event's fields into `slots` (the profile
    /// section of a customer's state).
    pub(crate) fn apply(
        &self,
        slots: &mut [f32],
        attributes: &BTreeMap<String, String>,
        metrics: &BTreeMap<String, f64>,
    ) {
        let mut at = 0;
        for field in &self.fields {
            let n = field.slots();
            let mine = &mut slots[at..at + n];
            at += n;
            match &field.kind {
                FieldKind::Number { .. } => {
                    if let Some(v) = metrics.get(&field.name) {
                        mine[0] = *v as f32;
                    }
                }
                FieldKind::Category(values) => {
                    if let Some(v) = attributes.get(&field.name) {
                        mine[0] = values.position(v).map_or(0.0, |i| (i + 1) as f32);
                    }
                }
                FieldKind::Set(values) => {
                    if let Some(v) = attributes.get(&field.name) {
                        let mut bits = vec![0u32; n];
                        for i in set_items(v).filter_map(|item| values.position(item)) {
                            bits[i / SET_BITS_PER_SLOT] |= 1 << (i % SET_BITS_PER_SLOT);
                        }
                        for (slot, b) in mine.iter_mut().zip(bits) {
                            *slot = b as f32;
                        }
                    }
                }
            }
        }
    }

    /// The slots of a customer with no profile.
    pub(crate) fn blank(&self, slots: &mut [f32]) {
        let mut at = 0;
        for field in &self.fields {
            let n = field.slots();
            let fill = match field.kind {
                FieldKind::Number { .. } => UNSET_NUMBER,
                _ => 0.0,
            };
            slots[at..at + n].fill(fill);
            at += n;
        }
    }

    /// Copies into `mine` every field it has not set from `theirs` (profile
    /// sections of two states).
    pub(crate) fn fill_unset(&self, mine: &mut [f32], theirs: &[f32]) {
        for (i, field) in self.fields.iter().enumerate() {
            if read_field(self, mine, i) == ProfileValue::Unset
                || matches!(read_field(self, mine, i), ProfileValue::Set(s) if s.iter().all(|b| *b == 0.0))
            {
                let at = self.offset(i);
                let n = field.slots();
                mine[at..at + n].copy_from_slice(&theirs[at..at + n]);
            }
        }
    }

    /// Total slots.
    pub(crate) fn slots(&self) -> usize {
        self.fields.iter().map(ProfileField::slots).sum()
    }

    /// Where field `i`'s slots start.
    pub(crate) fn offset(&self, i: usize) -> usize {
        self.fields[..i].iter().map(ProfileField::slots).sum()
    }
}

/// A profile value read from a customer's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ProfileValue<'a> {
    /// Not set.
    Unset,
    /// A number field's value.
    Number(f64),
    /// A category field's value, by position.
    Category(usize),
    /// A set field's bits (slot by slot, 24 values each).
    Set(&'a [f32]),
}

impl ProfileValue<'_> {
    /// True if a set value holds the value at position `i`.
    pub(crate) fn has(&self, i: usize) -> bool {
        match self {
            ProfileValue::Set(slots) => slots
                .get(i / SET_BITS_PER_SLOT)
                .is_some_and(|s| (*s as u32) >> (i % SET_BITS_PER_SLOT) & 1 == 1),
            _ => false,
        }
    }
}

/// Reads field `i` from the profile section `slots`.
pub(crate) fn read_field<'a>(spec: &ProfileSpec, slots: &'a [f32], i: usize) -> ProfileValue<'a> {
    let at = spec.offset(i);
    let field = &spec.fields[i];
    let mine = &slots[at..at + field.slots()];
    match field.kind {
        FieldKind::Number { .. } if mine[0] == UNSET_NUMBER => ProfileValue::Unset,
        FieldKind::Number { .. } => ProfileValue::Number(f64::from(mine[0])),
        FieldKind::Category(_) if mine[0] == 0.0 => ProfileValue::Unset,
        FieldKind::Category(_) => ProfileValue::Category(mine[0] as usize - 1),
        FieldKind::Set(_) => ProfileValue::Set(mine),
    }
}

fn undeclared_value(field: &str, value: &str, values: &Names) -> Rejection {
    Rejection::new(format!(
        "profile field {field:?} has no value {value:?} (declared: {})",
        values.as_slice().join(", ")
    ))
}

/// The items of a set field's comma-separated value.
pub(crate) fn set_items(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A request attribute the deployment declares.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSpec {
    /// Its key in `attributes`.
    pub name: String,
    /// Its values, if the deployment lists them (one-hot features need them);
    /// `None` for free text (rules may still compare it).
    pub values: Option<Names>,
}

/// A request metric the deployment declares.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Its key in `metrics`.
    pub name: String,
    /// Lowest value that matters.
    pub min: f64,
    /// Highest value that matters.
    pub max: f64,
}

/// What an interaction may carry about the request itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Declared attributes (string values).
    pub attributes: Vec<AttributeSpec>,
    /// Declared metrics (numbers).
    pub metrics: Vec<MetricSpec>,
    /// Most attributes plus metrics one interaction may carry.
    pub max_entries: usize,
    /// Longest attribute key or value, bytes.
    pub max_value_bytes: usize,
}

impl Default for RequestSpec {
    /// Nothing declared; at most 32 entries of 256 bytes.
    fn default() -> Self {
        Self {
            attributes: Vec::new(),
            metrics: Vec::new(),
            max_entries: 32,
            max_value_bytes: 256,
        }
    }
}

impl RequestSpec {
    /// The attribute declared as `name`.
    pub fn attribute(&self, name: &str) -> Option<&AttributeSpec> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The metric declared as `name`.
    pub fn metric(&self, name: &str) -> Option<&MetricSpec> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Checks what an interaction carries: not too many entries, none too
    /// long, every metric a finite number. Undeclared keys are carried but
    /// not used.
    pub fn check(
        &self,
        attributes: &BTreeMap<String, String>,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), Rejection> {
        let n = attributes.len() + metrics.len();
        if n > self.max_entries {
            return Err(Rejection::new(format!(
                "{n} attributes and metrics; at most {} are allowed (request.max_entries)",
                self.max_entries
            )));
        }
        let too_long = |s: &str| s.len() > self.max_value_bytes;
        if let Some((k, v)) = attributes.iter().find(|(k, v)| too_long(k) || too_long(v)) {
            let (what, len) = if too_long(k) {
                ("key", k.len())
            } else {
                ("value", v.len())
            };
            return Err(Rejection::new(format!(
                "attribute {:?}: its {what} is {len} bytes; at most {} are allowed (request.max_value_bytes)",
                k.chars().take(40).collect::<String>(),
                self.max_value_bytes
            )));
        }
        if let Some(k) = metrics.keys().find(|k| too_long(k)) {
            return Err(Rejection::new(format!(
                "a metric key is {} bytes; at most {} are allowed (request.max_value_bytes)",
                k.len(),
                self.max_value_bytes
            )));
        }
        if let Some((k, v)) = metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Rejection::new(format!(
                "metric {k:?} = {v} is not a finite number"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test profile, with 30 products (two slots' worth).
    fn spec() -> ProfileSpec {
        let mut spec = crate::testing::declarations().profile;
        spec.fields[2].kind =
            FieldKind::Set(Names::new((0..30).map(|i| format!("p{i}"))).expect("names"));
        spec
    }

    fn map<V: Clone>(kv: &[(&str, V)]) -> BTreeMap<String, V> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_profile_update_is_kept_in_its_slots_and_read_back() {
        let spec = spec();
        assert_eq!(spec.slots(), 4, "30 set values take two slots");
        let mut slots = vec![0.0; spec.slots()];
        spec.blank(&mut slots);
        assert_eq!(read_field(&spec, &slots, 0), ProfileValue::Unset);
        let attributes = map(&[("country", "fr".to_owned()), ("products", "p1, p27".into())]);
        let metrics = map(&[("age", 34.0)]);
        spec.check_update(&attributes, &metrics).expect("valid");
        spec.apply(&mut slots, &attributes, &metrics);
        assert_eq!(read_field(&spec, &slots, 0), ProfileValue::Number(34.0));
        assert_eq!(read_field(&spec, &slots, 1), ProfileValue::Category(1));
        let products = read_field(&spec, &slots, 2);
        assert!(products.has(1) && products.has(27) && !products.has(2));
        // An empty value clears a category.
        spec.apply(&mut slots, &map(&[("country", String::new())]), &map(&[]));
        assert_eq!(read_field(&spec, &slots, 1), ProfileValue::Unset);
    }

    #[test]
    fn a_bad_profile_update_is_explained() {
        let spec = spec();
        for (attributes, metrics, says) in [
            (
                map(&[("colour", "red".to_owned())]),
                map(&[]),
                "not declared",
            ),
            (map(&[("country", "xx".to_owned())]), map(&[]), "no value"),
            (
                map(&[("products", "p1,zz".to_owned())]),
                map(&[]),
                "no value",
            ),
            (map(&[("age", "3".to_owned())]), map(&[]), "is a number"),
            (map(&[]), map(&[("age", f64::NAN)]), "not a finite"),
            (map(&[]), map(&[("country", 1.0)]), "not a number"),
            (map(&[]), map(&[]), "sets no field"),
        ] {
            let e = spec.check_update(&attributes, &metrics).expect_err(says);
            assert!(e.reason().contains(says), "{}", e.reason());
        }
    }

    #[test]
    fn request_entries_are_bounded() {
        let spec = RequestSpec {
            max_entries: 2,
            max_value_bytes: 8,
            ..RequestSpec::default()
        };
        let ok = map(&[("intent", "buy".to_owned())]);
        spec.check(&ok, &map(&[("basket", 3.0)])).expect("valid");
        let long = map(&[("intent", "x".repeat(9))]);
        assert!(spec.check(&long, &map(&[])).is_err());
        assert!(
            spec.check(&ok, &map(&[("a", 1.0), ("b", 2.0)]))
                .expect_err("three")
                .reason()
                .contains("at most 2")
        );
        assert!(spec.check(&ok, &map(&[("basket", f64::INFINITY)])).is_err());
    }
}
