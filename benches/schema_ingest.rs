//! Ingest with an event schema on and off: `weir serve` with two tenants, "typed" (a
//! `reject`-mode schema on `order/placed`: eight typed properties, required fields, an
//! enum, bounds, a nested object and an array of objects) and "plain" (no schema at all,
//! the hash-lookup path). Each round sends the same valid events to both, in batches of
//! 500 from 4 senders at once, alternating which tenant goes first; prints events/s per
//! round and the range over rounds, with the server's CPU time per event (less noisy than
//! wall time on a shared machine), then the check alone in process.
//!
//! `cargo bench --bench schema_ingest` (WEIR_SCHEMA_ROUNDS, default 5;
//! WEIR_SCHEMA_BATCHES, batches per tenant per round, default 200; WEIR_LOAD_BIN drives
//! another build). Under `cargo test` it runs small.

mod util;

use std::time::Instant;

use serde_json::{json, Value};

const BATCH: usize = 500;
const SENDERS: usize = 4;

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id", "amount", "currency", "customer", "lines"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "amount": {"type": "integer", "minimum": 0},
            "currency": {"enum": ["EUR", "USD", "GBP"]},
            "coupon": {"type": ["string", "null"]},
            "gift": {"type": "boolean"},
            "customer": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}, "tier": {"enum": ["free", "pro"]}}
            },
            "lines": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
                }
            },
            "note": {"type": "string", "maxLength": 500}
        }
    })
}

fn batch(round: usize, b: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..BATCH)
        .map(|i| {
            let currency = ["EUR", "USD", "GBP"][i % 3];
            json!({"name": "order/placed", "data": {
                "order_id": format!("o-{round}-{b}-{i}"),
                "amount": i * 7,
                "currency": currency,
                "coupon": if i % 2 == 0 { Value::Null } else { json!("WELCOME") },
                "gift": i % 5 == 0,
                "customer": {"id": format!("c{}", i % 97), "tier": if i % 4 == 0 { "pro" } else { "free" }},
                "lines": [{"sku": "A-1", "qty": 1 + i % 3}, {"sku": "B-2", "qty": 2}],
                "note": "leave at the door"
            }})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// Sends `batches` to a tenant from [`SENDERS`] threads; events per second, and the
/// server's CPU time per event (µs).
fn send_all(pid: u32, url: &str, key: &str, batches: &[Vec<u8>]) -> (f64, f64) {
    let cpu0 = util::proc_cpu_secs(pid);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for part in batches.chunks(batches.len().div_ceil(SENDERS)) {
            s.spawn(move || {
                let a = util::agent();
                for b in part {
                    util::call(&a, "POST", &format!("{url}/e"), key, Some(b));
                }
            });
        }
    });
    let n = (batches.len() * BATCH) as f64;
    let cpu = util::proc_cpu_secs(pid) - cpu0;
    (n / t0.elapsed().as_secs_f64(), cpu * 1e6 / n)
}

fn range(xs: &[f64], unit: &str) -> String {
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(0.0, f64::max);
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    format!(
        "{lo:>7.1} – {hi:>7.1} {unit} (median {:.1})",
        sorted[sorted.len() / 2]
    )
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rounds: usize = util::env_or("WEIR_SCHEMA_ROUNDS", if bench { 5 } else { 1 });
    let per_round: usize = util::env_or("WEIR_SCHEMA_BATCHES", if bench { 200 } else { 2 });
    let tmp = tempfile::tempdir().unwrap();
    let (server, url) = util::serve(tmp.path(), &util::tenants(&["typed", "plain"]));
    let pid = server.pid();
    let a = util::agent();
    let body = json!({"v": "1", "mode": "reject", "schema": schema()}).to_string();
    util::call(
        &a,
        "PUT",
        &format!("{url}/v1/schemas/order/placed"),
        "api_typed",
        Some(body.as_bytes()),
    );
    // The schema really applies: an invalid event is refused.
    let bad = json!({"name": "order/placed", "data": {"amount": -1}}).to_string();
    let r = a
        .post(format!("{url}/e"))
        .header("Authorization", "Bearer evt_typed")
        .header("Content-Type", "application/json")
        .send(bad.as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "the schema is not enforced");
    println!(
        "weir schema ingest bench (2 cores, {rounds} rounds × {per_round} batches × {BATCH} events per tenant, {SENDERS} senders)"
    );
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let (mut cpu_on, mut cpu_off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let batches: Vec<Vec<u8>> = (0..per_round).map(|b| batch(round, b)).collect();
        // Alternate who goes first, so that neither always meets a warmer (or fuller) store.
        let (first, second) = if round % 2 == 0 {
            (("typed", "evt_typed"), ("plain", "evt_plain"))
        } else {
            (("plain", "evt_plain"), ("typed", "evt_typed"))
        };
        for (tenant, key) in [first, second] {
            let (eps, cpu) = send_all(pid, &url, key, &batches);
            println!(
                "round {round}: schema {:<3} {eps:>7.0} events/s, server CPU {cpu:>5.1} µs/event",
                if tenant == "typed" { "on" } else { "off" }
            );
            if tenant == "typed" {
                on.push(eps);
                cpu_on.push(cpu);
            } else {
                off.push(eps);
                cpu_off.push(cpu);
            }
        }
    }
    println!("schema off: {}", range(&off, "events/s"));
    println!("schema on:  {}", range(&on, "events/s"));
    println!("server CPU, schema off: {}", range(&cpu_off, "µs/event"));
    println!("server CPU, schema on:  {}", range(&cpu_on, "µs/event"));
    // The check alone, in process: what the schema adds to each event.
    let v = weir::schema::compile(&schema()).unwrap();
    let data: Vec<Value> = serde_json::from_slice::<Vec<Value>>(&batch(0, 0))
        .unwrap()
        .into_iter()
        .map(|e| e["data"].clone())
        .collect();
    let reps = if bench { 200 } else { 2 };
    let t0 = Instant::now();
    for _ in 0..reps {
        for d in &data {
            assert!(weir::schema::check_data(&v, d).is_empty());
        }
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / (reps * data.len()) as f64;
    println!("the check alone (in process, valid events): {per:.2} µs/event");
}
