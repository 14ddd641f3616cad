//! Node affinity: `spec.affinity.nodeAffinity` read into terms, and a term matched against a
//! node's labels and name, with Kubernetes' semantics.
//!
//! Terms are ORed; within a term every `matchExpressions` and `matchFields` requirement must
//! hold. A term with no requirement, an unknown operator, or `Gt`/`Lt` without one integer
//! matches nothing (the API server would have refused it). The only field is
//! `metadata.name`.

use std::collections::BTreeMap;

use serde_json::Value;

/// How a requirement compares a label (or field) with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// The label is one of the values.
    In(Vec<String>),
    /// The label is absent or none of the values.
    NotIn(Vec<String>),
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label is an integer greater than this one.
    Gt(i64),
    /// The label is an integer less than this one.
    Lt(i64),
    /// Anything else: never holds.
    Invalid,
}

/// One `key operator values` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (or, in `fields`, the field path).
    pub key: String,
    /// The comparison.
    pub operator: Operator,
}

/// One node selector term.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Term {
    /// `matchExpressions`, on labels.
    pub expressions: Vec<Requirement>,
    /// `matchFields`, on `metadata.name`.
    pub fields: Vec<Requirement>,
}

impl Requirement {
    fn from_object(value: &Value) -> Requirement {
        let values: Vec<String> = value["values"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let integer = || match values.as_slice() {
            [one] => one.parse::<i64>().ok(),
            _ => None,
        };
        let operator = match value["operator"].as_str().unwrap_or_default() {
            "In" => Operator::In(values.clone()),
            "NotIn" => Operator::NotIn(values.clone()),
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => integer().map_or(Operator::Invalid, Operator::Gt),
            "Lt" => integer().map_or(Operator::Invalid, Operator::Lt),
            _ => Operator::Invalid,
        };
        Requirement {
            key: value["key"].as_str().unwrap_or_default().to_owned(),
            operator,
        }
    }

    fn holds(&self, value: Option<&str>) -> bool {
        match (&self.operator, value) {
            (Operator::In(values), Some(v)) => values.iter().any(|x| x == v),
            (Operator::In(_), None) => false,
            (Operator::NotIn(values), Some(v)) => !values.iter().any(|x| x == v),
            (Operator::NotIn(_), None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (Operator::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (Operator::Gt(_) | Operator::Lt(_) | Operator::Invalid, _) => false,
        }
    }
}

impl Term {
    /// A `nodeSelectorTerm` object.
    pub fn from_object(value: &Value) -> Term {
        let list = |name: &str| {
            value[name]
                .as_array()
                .map(|r| r.iter().map(Requirement::from_object).collect())
                .unwrap_or_default()
        };
        Term {
            expressions: list("matchExpressions"),
            fields: list("matchFields"),
        }
    }

    /// Whether a node with these labels and this name satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions
            .iter()
            .all(|r| r.holds(labels.get(&r.key).map(String::as_str)))
            && self
                .fields
                .iter()
                .all(|r| r.key == "metadata.name" && r.holds(Some(name)))
    }
}

/// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`, when the pod has it.
pub fn required(pod_spec: &Value) -> Option<Vec<Term>> {
    let terms = pod_spec["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array()?;
    Some(terms.iter().map(Term::from_object).collect())
}

/// `preferredDuringSchedulingIgnoredDuringExecution`: (weight, preference) pairs; terms with
/// a weight outside 1..=100 are dropped, as the API server would refuse them.
pub fn preferred(pod_spec: &Value) -> Vec<(i64, Term)> {
    pod_spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| {
                    let weight = p["weight"].as_i64().filter(|w| (1..=100).contains(w))?;
                    Some((weight, Term::from_object(&p["preference"])))
                })
                .collect()
        })
        .unwrap_or_default()
}
