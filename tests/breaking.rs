//! `axion-gen check --against`: one before/after pair per rule under
//! tests/fixtures/breaking/<case>/, run through the CLI binary. Exit 1 with one located line
//! per breaking change, 0 for a compatible pair, 2 for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_axion-gen");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case_dir(case: &str) -> String {
    format!("tests/fixtures/breaking/{case}")
}

fn check(case: &str, extra: &[&str]) -> Output {
    let dir = case_dir(case);
    Command::new(BIN)
        .current_dir(root())
        .args(["check", "--proto-dir", &format!("{dir}/after")])
        .args(["--against", &format!("{dir}/before")])
        .args(extra)
        .output()
        .unwrap()
}

/// `file:line:col` of the first line of `side/shop.proto` that contains `text`, the column
/// being where the line's code starts.
fn at(case: &str, side: &str, text: &str) -> String {
    let file = format!("{}/{side}/shop.proto", case_dir(case));
    let source = std::fs::read_to_string(root().join(&file)).unwrap();
    let (n, line) = source
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(text))
        .unwrap_or_else(|| panic!("{file} has no line with {text:?}"));
    let col = line.len() - line.trim_start().len() + 1;
    format!("{file}:{}:{col}", n + 1)
}

/// Runs a case and checks: exit 1, exactly the `expected` (rule, location, words) lines.
fn assert_breaks(case: &str, expected: &[(&str, String, &str)]) {
    let out = check(case, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{case}: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "{case}: expected {} finding(s):\n{stdout}",
        expected.len()
    );
    for (rule, location, words) in expected {
        let prefix = format!("{location}: breaking [{rule}]: ");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(words)),
            "{case}: no line starting with {prefix:?} and containing {words:?} in\n{stdout}"
        );
    }
    assert!(
        stderr.contains(&format!("{} breaking change(s)", expected.len())),
        "{stderr}"
    );
}

#[test]
fn compatible_changes_exit_0() {
    // A field removed with `reserved`, fields, rpcs and enum values added, an rpc renamed
    // while keeping its pattern.
    let out = check("compatible", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no breaking changes"));
}

#[test]
fn identical_versions_are_compatible() {
    let dir = case_dir("compatible");
    let out = Command::new(BIN)
        .current_dir(root())
        .args(["check", "--proto-dir", &format!("{dir}/before")])
        .args(["--against", &format!("{dir}/before")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn removed_pattern() {
    let c = "pattern_removed";
    assert_breaks(
        c,
        &[(
            "PATTERN_REMOVED",
            at(c, "after", "service OrderService"),
            "pattern axion.order-service.list-orders (shop.v1.OrderService.ListOrders, server-streaming) was removed",
        )],
    );
}

#[test]
fn renamed_service_removes_its_patterns() {
    let c = "service_renamed";
    let here = at(c, "after", "service OrdersService");
    assert_breaks(
        c,
        &[
            (
                "PATTERN_REMOVED",
                here.clone(),
                "axion.order-service.place-order",
            ),
            (
                "PATTERN_REMOVED",
                here.clone(),
                "axion.order-service.list-orders",
            ),
            ("PATTERN_REMOVED", here, "axion.order-service.order-placed"),
        ],
    );
}

#[test]
fn changed_pattern_and_reply_topic() {
    let c = "pattern_changed";
    assert_breaks(
        c,
        &[
            (
                "PATTERN_CHANGED",
                at(c, "after", "option (axion.method).pattern"),
                "changed from axion.order-service.place-order to shop.orders.place",
            ),
            (
                "REPLY_TOPIC_CHANGED",
                at(c, "after", "rpc PlaceOrder"),
                "from axion.order-service.place-order.reply to shop.orders.place.reply",
            ),
        ],
    );
}

#[test]
fn changed_request_type() {
    let c = "request_type_changed";
    assert_breaks(
        c,
        &[(
            "REQUEST_TYPE_CHANGED",
            at(c, "after", "rpc PlaceOrder"),
            "from shop.v1.PlaceOrderRequest to shop.v1.Order",
        )],
    );
}

#[test]
fn changed_response_type() {
    let c = "response_type_changed";
    assert_breaks(
        c,
        &[(
            "RESPONSE_TYPE_CHANGED",
            at(c, "after", "rpc PlaceOrder"),
            "from shop.v1.PlaceOrderResponse to shop.v1.Order",
        )],
    );
}

#[test]
fn changed_rpc_kind() {
    let c = "rpc_kind_changed";
    assert_breaks(
        c,
        &[(
            "RPC_KIND_CHANGED",
            at(c, "after", "rpc ListOrders"),
            "from server-streaming to request-reply",
        )],
    );
}

#[test]
fn event_that_became_a_call_gets_a_reply_topic() {
    let c = "event_became_rpc";
    let here = at(c, "after", "rpc OrderPlaced");
    assert_breaks(
        c,
        &[
            (
                "RPC_KIND_CHANGED",
                here.clone(),
                "from event to request-reply",
            ),
            (
                "REPLY_TOPIC_CHANGED",
                here,
                "from none (event) to axion.order-service.order-placed.reply",
            ),
        ],
    );
}

#[test]
fn field_number_reused_with_another_name() {
    let c = "field_number_reused";
    assert_breaks(
        c,
        &[(
            "FIELD_NAME_CHANGED",
            at(c, "after", "string comment = 5;"),
            "field number 5 of shop.v1.Order is now `comment` (JSON key `comment`), was `note`",
        )],
    );
}

#[test]
fn field_type_changed() {
    let c = "field_type_changed";
    assert_breaks(
        c,
        &[(
            "FIELD_TYPE_CHANGED",
            at(c, "after", "string total_cents = 4;"),
            "from int64 to string",
        )],
    );
}

#[test]
fn field_label_changed() {
    let c = "field_label_changed";
    assert_breaks(
        c,
        &[(
            "FIELD_LABEL_CHANGED",
            at(c, "after", "repeated string customer = 2;"),
            "from singular to repeated",
        )],
    );
}

#[test]
fn field_removed_without_reserved() {
    let c = "field_removed";
    assert_breaks(
        c,
        &[(
            "FIELD_REMOVED",
            at(c, "after", "message Order {"),
            "field 5 `note` of shop.v1.Order was removed without `reserved 5;`",
        )],
    );
}

#[test]
fn enum_value_removed() {
    let c = "enum_value_removed";
    assert_breaks(
        c,
        &[(
            "ENUM_VALUE_REMOVED",
            at(c, "after", "enum OrderStatus"),
            "value 2 (ORDER_STATUS_SHIPPED) of enum shop.v1.OrderStatus was removed",
        )],
    );
}

#[test]
fn enum_value_number_reused() {
    let c = "enum_value_reused";
    assert_breaks(
        c,
        &[(
            "ENUM_VALUE_NUMBER_REUSED",
            at(c, "after", "ORDER_STATUS_CANCELLED = 2;"),
            "now ORDER_STATUS_CANCELLED, was ORDER_STATUS_SHIPPED",
        )],
    );
}

#[test]
fn enum_used_by_a_pattern_removed() {
    // The fields that carried it are reserved, so only the enum itself is reported, at its
    // declaration in the reference.
    let c = "enum_removed";
    assert_breaks(
        c,
        &[(
            "ENUM_REMOVED",
            at(c, "before", "enum OrderStatus {"),
            "enum shop.v1.OrderStatus, carried by pattern axion.order-service.",
        )],
    );
}

#[test]
fn message_used_by_a_pattern_removed() {
    // The fields that carried it are reserved, so only the message itself is reported, at
    // its declaration in the reference.
    let c = "message_removed";
    assert_breaks(
        c,
        &[(
            "MESSAGE_REMOVED",
            at(c, "before", "message Item {"),
            "message shop.v1.Item, carried by pattern axion.order-service.place-order, was removed",
        )],
    );
}

#[test]
fn json_output_lists_the_same_findings() {
    let out = check("pattern_changed", &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["REPLY_TOPIC_CHANGED", "PATTERN_CHANGED"]);
    assert!(findings[1]["location"]
        .as_str()
        .unwrap()
        .ends_with("after/shop.proto:11:5"));
}

#[test]
fn bad_input_exits_2_with_a_location() {
    let out = check("bad_input", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}: error:", at("bad_input", "after", "strin note = 5;"));
    assert!(stderr.contains(&expected), "{stderr}");

    let missing = Command::new(BIN)
        .current_dir(root())
        .args([
            "check",
            "--proto-dir",
            &format!("{}/after", case_dir("compatible")),
        ])
        .args(["--against", "tests/fixtures/breaking/no-such-dir"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-dir"));
    assert!(Path::new(&root()).join(case_dir("compatible")).is_dir());
}
