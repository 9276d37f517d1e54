//! The lifecycle policy document: parsed into types that only admit valid rules, and
//! validated with the messages ECR gives (spec §4.6).

use serde_json::{Map, Value};

/// Why a document was refused; the text goes after ECR's
/// `Lifecycle policy validation failure: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// Sorted by priority, ascending (the order rules are applied in).
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub selection: Selection,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub tags: TagSelection,
    pub storage_class: StorageClass,
    pub count: Count,
}

/// Which images a rule looks at, by their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelection {
    Untagged,
    Any,
    /// Tagged images where every prefix starts at least one of the image's tags.
    Prefixes(Vec<String>),
    /// Tagged images where every pattern (`*` wildcards) matches at least one tag.
    Patterns(Vec<String>),
}

pub use crate::storage_class::StorageClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Keep the newest N, act on the rest.
    MoreThan(u32),
    /// Act on images pushed more than N days ago.
    SincePushed(u32),
    /// Act on images last pulled (or, never pulled, pushed) more than N days ago.
    SincePulled(u32),
    /// Act on images archived more than N days ago.
    SinceTransitioned(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Expire,
    /// Move to the archive storage class.
    Transition,
}

impl RuleAction {
    /// As GetLifecyclePolicyPreview spells it.
    pub fn api_name(self) -> &'static str {
        match self {
            RuleAction::Expire => "EXPIRE",
            RuleAction::Transition => "TRANSITION",
        }
    }
}

/// Stars a tag pattern may hold.
const MAX_PATTERN_STARS: usize = 4;

fn fail<T>(detail: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(detail.into()))
}

/// Refuse keys outside `allowed`, and require `required`, with the schema validator's words.
fn check_keys(
    obj: &Map<String, Value>,
    allowed: &[&str],
    required: &[&str],
) -> Result<(), Invalid> {
    let mut extra: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        return fail(format!(
            "object instance has properties which are not allowed by the schema: ({})",
            quoted_list(&extra)
        ));
    }
    let mut missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return fail(format!(
            "object has missing required properties ({})",
            quoted_list(&missing)
        ));
    }
    Ok(())
}

fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|k| format!("\"{k}\"")).collect();
    format!("[{}]", quoted.join(","))
}

fn enum_value<'a>(v: &'a Value, allowed: &[&str]) -> Result<&'a str, Invalid> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s),
        _ => {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fail(format!(
                "instance value ({shown}) not found in enum :(possible values: {})",
                quoted_list(allowed)
            ))
        }
    }
}

fn positive(v: &Value) -> Result<u32, Invalid> {
    match v.as_i64() {
        Some(n) if n >= 1 => u32::try_from(n).or_else(|_| fail("numeric instance is too large")),
        Some(n) => fail(format!(
            "numeric instance is lower than the required minimum (minimum: 1, found: {n})"
        )),
        None => fail(format!(
            "instance type ({}) does not match any allowed primitive type (allowed: [\"integer\"])",
            type_name(v)
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn object(v: &Value) -> Result<&Map<String, Value>, Invalid> {
    v.as_object().map_or_else(
        || {
            fail(format!(
                "instance type ({}) does not match any allowed primitive type (allowed: [\"object\"])",
                type_name(v)
            ))
        },
        Ok,
    )
}

fn string_list(v: &Value, field: &str) -> Result<Vec<String>, Invalid> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Invalid(format!("{field} must be a non-empty list of strings")))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| Invalid(format!("{field} must be a non-empty list of strings")))
        })
        .collect()
}

impl LifecyclePolicy {
    /// The rules as CloudTrail's `PolicyExecutionEvent` spells them
    /// (`lifecycleEventRules`: words, not the policy's keywords).
    pub fn cloudtrail_rules(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let (status, prefixes, patterns) = match &r.selection.tags {
                    TagSelection::Untagged => ("Untagged", vec![], vec![]),
                    TagSelection::Any => ("Any", vec![], vec![]),
                    TagSelection::Prefixes(p) => ("Tagged", p.clone(), vec![]),
                    TagSelection::Patterns(p) => ("Tagged", vec![], p.clone()),
                };
                let (count_type, days, n) = match r.selection.count {
                    Count::MoreThan(n) => ("Image count more than", false, n),
                    Count::SincePushed(n) => ("Time since image pushed", true, n),
                    Count::SincePulled(n) => ("Time since image last pulled", true, n),
                    Count::SinceTransitioned(n) => ("Time since image transitioned", true, n),
                };
                let mut selection = serde_json::json!({
                    "tagStatus": status,
                    "tagPrefixList": prefixes,
                    "tagPatternList": patterns,
                    "countType": count_type,
                    "countNumber": n,
                });
                if days {
                    selection["countUnit"] = Value::from("Days");
                }
                serde_json::json!({
                    "rulePriority": r.priority,
                    "lifecycleEventSelection": selection,
                    "action": match r.action {
                        RuleAction::Expire => "expire",
                        RuleAction::Transition => "transition",
                    },
                })
            })
            .collect();
        Value::Array(rules)
    }

    pub fn parse(text: &str) -> Result<LifecyclePolicy, Invalid> {
        let doc: Value = serde_json::from_str(text)
            .or_else(|_| fail("Could not map policyString into LifecyclePolicy."))?;
        let top = doc
            .as_object()
            .ok_or_else(|| Invalid("Could not map policyString into LifecyclePolicy.".into()))?;
        check_keys(top, &["rules"], &["rules"])?;
        let list = top["rules"]
            .as_array()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Invalid("rules must be a non-empty list".into()))?;
        let mut rules = list.iter().map(parse_rule).collect::<Result<Vec<_>, _>>()?;
        rules.sort_by_key(|r| r.priority);
        check_rules(&rules)?;
        Ok(LifecyclePolicy { rules })
    }
}

fn parse_rule(v: &Value) -> Result<Rule, Invalid> {
    let obj = object(v)?;
    check_keys(
        obj,
        &["rulePriority", "description", "selection", "action"],
        &["rulePriority", "selection", "action"],
    )?;
    let priority = positive(&obj["rulePriority"])?;
    if let Some(d) = obj.get("description") {
        if !d.is_string() {
            return fail("description must be a string");
        }
    }
    let action_obj = object(&obj["action"])?;
    check_keys(action_obj, &["type", "targetStorageClass"], &["type"])?;
    let action = match enum_value(&action_obj["type"], &["expire", "transition"])? {
        "expire" => {
            if action_obj.contains_key("targetStorageClass") {
                return fail("targetStorageClass is only allowed with the transition action");
            }
            RuleAction::Expire
        }
        _ => {
            match action_obj.get("targetStorageClass") {
                Some(t) => enum_value(t, &["archive"])?,
                None => return fail("The transition action requires targetStorageClass archive"),
            };
            RuleAction::Transition
        }
    };
    let selection = parse_selection(object(&obj["selection"])?)?;
    if action == RuleAction::Transition && selection.storage_class == StorageClass::Archive {
        return fail("Images in the archive storage class cannot be transitioned to archive");
    }
    Ok(Rule {
        priority,
        selection,
        action,
    })
}

fn parse_selection(obj: &Map<String, Value>) -> Result<Selection, Invalid> {
    check_keys(
        obj,
        &[
            "tagStatus",
            "tagPrefixList",
            "tagPatternList",
            "storageClass",
            "countType",
            "countUnit",
            "countNumber",
        ],
        &["tagStatus", "countType", "countNumber"],
    )?;
    let status = enum_value(&obj["tagStatus"], &["any", "tagged", "untagged"])?;
    let prefixes = obj
        .get("tagPrefixList")
        .map(|v| string_list(v, "tagPrefixList"))
        .transpose()?;
    let patterns = obj
        .get("tagPatternList")
        .map(|v| string_list(v, "tagPatternList"))
        .transpose()?;
    let tags = match (status, prefixes, patterns) {
        ("tagged", Some(p), None) => TagSelection::Prefixes(p),
        ("tagged", None, Some(p)) => {
            if p.iter()
                .any(|x| x.matches('*').count() > MAX_PATTERN_STARS)
            {
                return fail(format!(
                    "A tagPatternList entry may contain at most {MAX_PATTERN_STARS} wildcards (*)"
                ));
            }
            TagSelection::Patterns(p)
        }
        ("tagged", None, None) => {
            return fail("tagPrefixList or tagPatternList is required when tagStatus is tagged")
        }
        ("tagged", Some(_), Some(_)) => {
            return fail("Only one of tagPrefixList and tagPatternList may be given")
        }
        (other, None, None) => {
            if other == "untagged" {
                TagSelection::Untagged
            } else {
                TagSelection::Any
            }
        }
        (other, _, _) => {
            return fail(format!(
                "tagPrefixList and tagPatternList are only allowed when tagStatus is tagged, not {other}"
            ))
        }
    };
    let storage_class = match obj.get("storageClass") {
        None => StorageClass::Standard,
        Some(v) => match enum_value(v, &["standard", "archive"])? {
            "archive" => StorageClass::Archive,
            _ => StorageClass::Standard,
        },
    };
    let count_type = obj["countType"].as_str().unwrap_or("");
    let number = positive(&obj["countNumber"])?;
    let unit = obj.get("countUnit");
    let count = match count_type {
        "imageCountMoreThan" => {
            if unit.is_some() {
                return fail("countUnit cannot be used with countType imageCountMoreThan");
            }
            Count::MoreThan(number)
        }
        "sinceImagePushed" | "sinceImagePulled" | "sinceImageTransitioned" => {
            match unit {
                Some(u) => enum_value(u, &["days"])?,
                None => return fail(format!("countUnit is required with countType {count_type}")),
            };
            match count_type {
                "sinceImagePushed" => Count::SincePushed(number),
                "sinceImagePulled" => Count::SincePulled(number),
                _ => Count::SinceTransitioned(number),
            }
        }
        _ => return fail("instance failed to match exactly one schema (matched 0 out of 2)"),
    };
    match (count, storage_class) {
        (Count::SinceTransitioned(_), StorageClass::Standard) => {
            return fail("countType sinceImageTransitioned requires storageClass archive")
        }
        (Count::SinceTransitioned(_), StorageClass::Archive) | (_, StorageClass::Standard) => {}
        (_, StorageClass::Archive) => {
            return fail(
                "storageClass archive is only allowed with countType sinceImageTransitioned",
            )
        }
    }
    Ok(Selection {
        tags,
        storage_class,
        count,
    })
}

/// Rules taken together: unique priorities, `any` last, one untagged rule, unique prefixes.
fn check_rules(rules: &[Rule]) -> Result<(), Invalid> {
    for pair in rules.windows(2) {
        if pair[0].priority == pair[1].priority {
            return fail(format!(
                "The rulePriority {} is used by more than one rule; priorities must be unique",
                pair[0].priority
            ));
        }
    }
    let highest = rules.last().map_or(0, |r| r.priority);
    if rules
        .iter()
        .any(|r| r.selection.tags == TagSelection::Any && r.priority != highest)
    {
        return fail("The rule with tagStatus any must have the highest rulePriority");
    }
    let untagged = rules
        .iter()
        .filter(|r| r.selection.tags == TagSelection::Untagged)
        .count();
    if untagged > 1 {
        return fail("Only one rule may select untagged images");
    }
    let mut seen: Vec<&str> = Vec::new();
    for r in rules {
        if let TagSelection::Prefixes(list) = &r.selection.tags {
            for p in list {
                if seen.contains(&p.as_str()) {
                    return fail(format!(
                        "The tag prefix '{p}' is used by more than one rule; tag prefixes must be unique"
                    ));
                }
                seen.push(p);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(selection: &str, action: &str) -> String {
        format!(r#"{{"rules":[{{"rulePriority":1,"selection":{selection},"action":{action}}}]}}"#)
    }

    fn err(text: &str) -> String {
        LifecyclePolicy::parse(text).expect_err("invalid").0
    }

    #[test]
    fn the_documented_examples_parse() {
        let p = LifecyclePolicy::parse(
            r#"{"rules":[
              {"rulePriority":2,"description":"keep 5 prod","selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},
              {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}},
              {"rulePriority":3,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}
            ]}"#,
        )
        .expect("valid");
        assert_eq!(
            p.rules.iter().map(|r| r.priority).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(p.rules[0].selection.count, Count::SincePushed(14));
        assert_eq!(
            p.rules[1].selection.tags,
            TagSelection::Patterns(vec!["prod*".into()])
        );
        assert_eq!(p.rules[2].action, RuleAction::Transition);
    }

    #[test]
    fn schema_errors_use_the_validators_words() {
        assert_eq!(
            err("nope"),
            "Could not map policyString into LifecyclePolicy."
        );
        assert_eq!(
            err("{}"),
            r#"object has missing required properties (["rules"])"#
        );
        assert_eq!(
            err(r#"{"rules":[],"x":1}"#),
            r#"object instance has properties which are not allowed by the schema: (["x"])"#
        );
        assert_eq!(
            err(&rule(
                r#"{"tagStatus":"some","countType":"imageCountMoreThan","countNumber":1}"#,
                r#"{"type":"expire"}"#
            )),
            r#"instance value (some) not found in enum :(possible values: ["any","tagged","untagged"])"#
        );
        assert_eq!(
            err(&rule(
                r#"{"tagStatus":"any","countType":"imageCountLessThan","countNumber":1}"#,
                r#"{"type":"expire"}"#
            )),
            "instance failed to match exactly one schema (matched 0 out of 2)"
        );
        assert_eq!(
            err(&rule(
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}"#,
                r#"{"type":"expire"}"#
            )),
            "numeric instance is lower than the required minimum (minimum: 1, found: 0)"
        );
        assert_eq!(
            err(
                r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}}]}"#
            ),
            r#"object has missing required properties (["action"])"#
        );
    }

    #[test]
    fn rule_combinations_are_checked() {
        let any = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#;
        let expire = r#"{"type":"expire"}"#;
        let two = |a: &str, b: &str| {
            format!(
                r#"{{"rules":[{{"rulePriority":1,"selection":{a},"action":{expire}}},{{"rulePriority":2,"selection":{b},"action":{expire}}}]}}"#
            )
        };
        let untagged =
            r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#;
        let prefix = r#"{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1}"#;
        assert!(err(&two(any, untagged)).contains("must have the highest rulePriority"));
        assert!(LifecyclePolicy::parse(&two(untagged, any)).is_ok());
        assert!(err(&two(untagged, untagged)).contains("Only one rule may select untagged"));
        assert!(err(&two(prefix, prefix)).contains("tag prefixes must be unique"));
        for bad in [
            r#"{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}"#,
            r#"{"tagStatus":"untagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1}"#,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1}"#,
            r#"{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1}"#,
            r#"{"tagStatus":"tagged","tagPatternList":["a*b*c*d*e*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            r#"{"tagStatus":"any","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1}"#,
            r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
        ] {
            assert!(LifecyclePolicy::parse(&rule(bad, expire)).is_err(), "{bad}");
        }
        assert!(LifecyclePolicy::parse(&rule(any, r#"{"type":"transition"}"#)).is_err());
        assert!(LifecyclePolicy::parse(&rule(
            r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":90}"#,
            expire
        ))
        .is_ok());
    }
}
