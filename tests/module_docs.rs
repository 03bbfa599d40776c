//! The sidecar docs (`plugins/modules/<module>.yml`) say exactly what each binary accepts.
//! First, field by field, against the one declaration each module makes of its options
//! (`kubeha::modules::SPECS`: name, type, required, default, choices, first line of the
//! description). Then against the binaries themselves:
//! Each binary is asked for its options the way a user would find out: an unknown option makes it
//! fail listing the supported ones, which must be the documented ones. Then every documented
//! option is exercised: a required one left out, a value of the wrong type, a value outside its
//! choices: each must fail naming the option (and the documented choices). The options are
//! rejected before the module looks at the host, so these runs touch nothing.
//! Return values are cross-checked on every successful run of the suite
//! (`common::assert_returns_documented`).

mod common;

use common::*;
use serde_json::{json, Map, Value};

/// The smallest valid options of each module: exactly its required options.
fn required_options(module: &str) -> Value {
    match module {
        "control_plane_info" => json!({}),
        "kubeadm_config" => json!({"control_plane_endpoint": "10.0.0.10:6443"}),
        "apiserver_cert" => json!({"sans": ["10.0.0.10"]}),
        "kubeconfig_server" => {
            json!({"path": "/nonexistent/admin.conf", "server": "https://10.0.0.10:6443"})
        }
        "component_restart" => json!({"name": "kube-scheduler"}),
        // control_plane_endpoint: required only with state=endpoint (the default), checked by the module
        "cluster_configmaps" => json!({}),
        // masters and control_plane_endpoint: required only with state=endpoint (the default)
        "cluster_workloads" => json!({"workloads": ["DaemonSet/kube-system/cilium"]}),
        "ha_verify" => json!({"endpoint": "10.0.0.10:6443"}),
        "vip_probe" => json!({"address": "10.0.0.10"}),
        other => panic!("no required options known for {other}"),
    }
}

fn documented_options(module: &str) -> Map<String, Value> {
    let docs = sidecar(module);
    docs["DOCUMENTATION"]["options"]
        .as_object()
        .unwrap_or_else(|| panic!("{module}.yml: DOCUMENTATION.options is not a mapping"))
        .clone()
}

fn with(module: &str, key: &str, value: Value) -> Value {
    let mut o = required_options(module);
    o[key] = value;
    o
}

fn failure(module: &str, options: Value) -> String {
    let out = run_module(module, options, Mode::CHECK_DIFF);
    out.fail_msg()
}

/// The sidecar's description of an option: its text, or the first item of its list.
fn first_description(spec: &Value) -> String {
    match &spec["description"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.first().and_then(Value::as_str).unwrap_or("").into(),
        _ => String::new(),
    }
}

#[test]
fn sidecars_match_the_declared_option_specs_field_by_field() {
    let declared: Vec<&str> = kubeha::modules::SPECS.iter().map(|s| s.name).collect();
    let mut listed = MODULES.to_vec();
    listed.sort_unstable();
    let mut sorted = declared.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, listed,
        "modules with a spec vs. modules the suite runs"
    );
    let mut fields = 0;
    for spec in kubeha::modules::SPECS {
        let module = spec.name;
        assert_eq!(sidecar(module)["DOCUMENTATION"]["module"], module);
        fields += check_options(module, spec.options, &documented_options(module));
    }
    assert_eq!(
        fields, 87,
        "options checked, suboptions included (a new option changes this count on purpose)"
    );
}

/// Declared vs. documented, option by option (and the suboptions of a list of dictionaries);
/// the number of options checked.
fn check_options(
    at: &str,
    declared: &[kubeha::options::OptionSpec],
    docs: &Map<String, Value>,
) -> usize {
    let mut documented: Vec<&str> = docs.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut names: Vec<&str> = declared.iter().map(|o| o.name).collect();
    names.sort_unstable();
    assert_eq!(names, documented, "{at}: declared vs. documented options");
    let mut fields = 0;
    for option in declared {
        let doc = &docs[option.name];
        let at = format!("{at}.yml: {}", option.name);
        assert_eq!(doc["type"], option.kind.ansible_type(), "{at}: type");
        assert_eq!(
            doc.get("elements").and_then(Value::as_str),
            option.kind.elements(),
            "{at}: elements"
        );
        if let kubeha::options::Kind::DictList(items) = option.kind {
            let sub = doc["suboptions"]
                .as_object()
                .unwrap_or_else(|| panic!("{at}: a list of dictionaries documents its suboptions"));
            fields += check_options(&at, items.options, sub);
        }
        assert_eq!(
            doc["required"] == json!(true),
            option.required,
            "{at}: required"
        );
        assert_eq!(
            doc.get("default").cloned(),
            option.default.to_json(),
            "{at}: default"
        );
        let choices: Vec<&str> = doc["choices"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(choices, option.choices, "{at}: choices");
        assert_eq!(
            first_description(doc),
            option.description,
            "{at}: description"
        );
        fields += 1;
    }
    fields
}

#[test]
fn every_module_accepts_exactly_its_documented_options() {
    for module in MODULES {
        let msg = failure(module, with(module, "kubeha_no_such_option", json!(1)));
        let supported = msg
            .split("supported options: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{module}: no list of supported options in {msg:?}"));
        let mut accepted: Vec<&str> = supported.split(", ").map(str::trim).collect();
        accepted.sort_unstable();
        let docs = documented_options(module);
        let mut documented: Vec<&str> = docs.keys().map(String::as_str).collect();
        documented.sort_unstable();
        assert_eq!(
            accepted, documented,
            "{module}: options the binary accepts vs. options its sidecar documents"
        );
        assert!(msg.contains("kubeha_no_such_option"), "{module}: {msg}");
    }
}

#[test]
fn required_options_are_documented_as_required_and_enforced() {
    for module in MODULES {
        let docs = documented_options(module);
        let mut documented: Vec<&str> = docs
            .iter()
            .filter(|(_, spec)| spec["required"] == json!(true))
            .map(|(name, _)| name.as_str())
            .collect();
        // Required unless another option stands in for them (documented in the description).
        if module == "kubeconfig_server" {
            documented.extend(["path", "server"]);
        }
        documented.sort_unstable();
        let minimal = required_options(module);
        let mut needed: Vec<&str> = minimal
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        needed.sort_unstable();
        assert_eq!(needed, documented, "{module}: required options");
        for name in needed {
            let mut o = minimal.clone();
            o.as_object_mut().unwrap().remove(name);
            let msg = failure(module, o);
            assert!(
                msg.contains(&format!("`{name}`")) && msg.contains("required"),
                "{module} without {name}: {msg}"
            );
            // A required option has no default to document.
            assert!(
                docs[name].get("default").is_none(),
                "{module}.yml: required option {name} documents a default"
            );
        }
    }
}

/// A misspelt required option (one letter dropped, as `sever` for `server`) is reported as the
/// unknown option it is, with the documented name it stands for, not as the required one missing.
#[test]
fn a_misspelt_required_option_is_named_with_its_closest_documented_name() {
    for module in MODULES {
        let minimal = required_options(module);
        for (name, value) in minimal.as_object().unwrap() {
            let typo: String = name
                .char_indices()
                .filter(|(i, _)| *i != 2)
                .map(|(_, c)| c)
                .collect();
            let mut o = minimal.clone();
            let map = o.as_object_mut().unwrap();
            map.remove(name);
            map.insert(typo.clone(), value.clone());
            let msg = failure(module, o);
            assert!(
                msg.contains(&format!("`{typo}` (did you mean `{name}`?)")),
                "{module} with {typo} for {name}: {msg}"
            );
            assert!(!msg.contains("required"), "{module} with {typo}: {msg}");
        }
    }
}

#[test]
fn wrong_types_fail_naming_the_option_and_the_documented_type() {
    for module in MODULES {
        for (name, spec) in documented_options(module) {
            let ty = spec["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{module}.yml: option {name} has no type"));
            let expected = match ty {
                "str" | "path" => "expected a string",
                "int" => "expected a whole number",
                "bool" => "expected a boolean",
                "list" => match spec["elements"].as_str() {
                    Some("str") => "expected a list of strings",
                    Some("int") => "expected a list of whole numbers",
                    Some("dict") => "expected a list of dictionaries",
                    other => panic!("{module}.yml: {name}: list elements {other:?}"),
                },
                other => panic!("{module}.yml: option {name} has type {other}, unknown here"),
            };
            let msg = failure(module, with(module, &name, json!({"a": 1})));
            assert!(
                msg.contains(&format!("`{name}`")) && msg.contains(expected),
                "{module}: {name} given a dictionary (documented type {ty}): {msg}"
            );
            if let Some(default) = spec.get("default") {
                let matches = match ty {
                    "str" | "path" => default.is_string(),
                    "int" => default.is_i64(),
                    "bool" => default.is_boolean(),
                    _ => default.is_array(),
                };
                assert!(
                    matches,
                    "{module}.yml: default of {name} is not a {ty}: {default}"
                );
            }
        }
    }
}

#[test]
fn choices_are_the_documented_ones() {
    let mut seen = 0;
    for module in MODULES {
        for (name, spec) in documented_options(module) {
            let Some(choices) = spec["choices"].as_array() else {
                continue;
            };
            seen += 1;
            let msg = failure(module, with(module, &name, json!("kubeha-bogus")));
            let listed = msg
                .split("is not one of: ")
                .nth(1)
                .unwrap_or_else(|| panic!("{module}: {name}: no choices in {msg:?}"));
            let listed: Vec<&str> = listed.split(", ").collect();
            let documented: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
            assert_eq!(listed, documented, "{module}: choices of {name}");
            if let Some(default) = spec["default"].as_str() {
                assert!(documented.contains(&default), "{module}: default of {name}");
            }
        }
    }
    assert_eq!(
        seen, 5,
        "options with choices: component_restart name, apiserver_cert regenerate, ha_verify drill, cluster_configmaps state, cluster_workloads state"
    );
}

#[test]
fn sidecars_are_complete() {
    for module in MODULES {
        let docs = sidecar(module);
        let doc = &docs["DOCUMENTATION"];
        assert_eq!(doc["module"], module, "{module}.yml: DOCUMENTATION.module");
        for key in [
            "short_description",
            "description",
            "version_added",
            "author",
        ] {
            assert!(doc.get(key).is_some(), "{module}.yml: DOCUMENTATION.{key}");
        }
        for attr in ["check_mode", "diff_mode"] {
            let support = doc["attributes"][attr]["support"].as_str().unwrap_or("");
            assert!(
                ["full", "partial", "none"].contains(&support),
                "{module}.yml: attributes.{attr}.support is {support:?}"
            );
        }
        for (key, spec) in docs["RETURN"].as_object().expect("RETURN") {
            for field in ["description", "type", "returned"] {
                assert!(
                    spec.get(field).is_some(),
                    "{module}.yml: RETURN.{key} has no {field}"
                );
            }
        }
        // EXAMPLES: valid YAML, a list of tasks calling this module with documented options.
        let text = docs["EXAMPLES"].as_str().expect("EXAMPLES is a YAML text");
        let tasks: Value = serde_yaml_ng::from_str(text)
            .unwrap_or_else(|e| panic!("{module}.yml: EXAMPLES is not valid YAML: {e}"));
        let options = documented_options(module);
        let fqcn = format!("kubeha.control_plane.{module}");
        let mut calls = 0;
        for task in tasks.as_array().expect("EXAMPLES is a list of tasks") {
            let Some(args) = task.get(&fqcn) else {
                continue;
            };
            calls += 1;
            for key in args.as_object().map(|m| m.keys()).into_iter().flatten() {
                assert!(
                    options.contains_key(key),
                    "{module}.yml: EXAMPLES use the undocumented option {key}"
                );
            }
            for (name, spec) in &options {
                if spec["required"] == json!(true) {
                    assert!(
                        args.get(name).is_some(),
                        "{module}.yml: an example omits the required option {name}"
                    );
                }
            }
        }
        assert!(calls >= 1, "{module}.yml: no example calls {fqcn}");
    }
}
