//! Each pool kind's observable behaviour: how many instances exist, how
//! many calls run and wait, and what is refused.

use std::sync::Arc;

use serde_json::{Value, json};
use wafer::engine::{EngineSettings, WaferEngine};
use wafer::{Error, Function, Registry, Runtime};

use super::util::{dir_of, registry, types_runtime, wait_until, wasm_entry};

fn spawn_call(
    function: &Arc<Function>,
    args: Vec<Value>,
) -> tokio::task::JoinHandle<wafer::Result<Value>> {
    let function = function.clone();
    tokio::spawn(async move { function.call_json(args).await })
}

async fn join_all(
    tasks: Vec<tokio::task::JoinHandle<wafer::Result<Value>>>,
) -> Vec<wafer::Result<Value>> {
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_grows_on_demand_and_drops_idle_instances() {
    let pool = "    pool:\n      type: lazy\n      max_size: 4\n      idle_timeout_ms: 1000\n";
    let runtime = types_runtime(&[("sleep", "types#sleep-ms", pool)]);
    let sleep = runtime.function("t:sleep").unwrap();
    assert_eq!(sleep.pool_stats().live, 0, "lazy pools start empty");
    let calls = (0..4)
        .map(|_| spawn_call(&sleep, vec![json!(200)]))
        .collect();
    for result in join_all(calls).await {
        assert_eq!(result.unwrap(), json!(200));
    }
    let stats = sleep.pool_stats();
    assert_eq!(
        (stats.created, stats.live, stats.idle),
        (4, 4, 4),
        "{stats:?}"
    );
    wait_until("idle instances are dropped", || {
        sleep.pool_stats().live == 0
    })
    .await;
    sleep.call_json(vec![json!(1)]).await.unwrap();
    assert_eq!(
        sleep.pool_stats().created,
        5,
        "a new instance after the idle ones were dropped"
    );
}

#[tokio::test]
async fn static_pool_keeps_its_size_and_refuses_calls_beyond_its_queue() {
    let pool = "    pool:\n      type: static\n      size: 2\n      workers: 1\n      buffer: 1\n";
    let runtime = types_runtime(&[("sleep", "types#sleep-ms", pool)]);
    let sleep = runtime.function("t:sleep").unwrap();
    assert_eq!(sleep.warm_up().await.unwrap(), 2);
    assert_eq!(sleep.pool_stats().live, 2);
    let running = spawn_call(&sleep, vec![json!(300)]);
    wait_until("one call runs", || sleep.pool_stats().running == 1).await;
    let queued = spawn_call(&sleep, vec![json!(1)]);
    wait_until("one call waits", || sleep.pool_stats().waiting == 1).await;
    let refused = sleep.call_json(vec![json!(1)]).await.unwrap_err();
    assert!(matches!(refused, Error::PoolFull { .. }), "{refused}");
    assert_eq!(
        refused.to_string(),
        "t:sleep: pool full: 1 calls running and 1 waiting"
    );
    assert_eq!(running.await.unwrap().unwrap(), json!(300));
    assert_eq!(queued.await.unwrap().unwrap(), json!(1));
    let stats = sleep.pool_stats();
    assert_eq!(
        (stats.created, stats.live, stats.running, stats.waiting),
        (2, 2, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_pool_grows_with_load_and_shrinks_to_its_floor() {
    let pool = "    pool:\n      type: adaptive\n      min_size: 1\n      max_size: 3\n      warm_start: true\n      idle_timeout_ms: 200\n";
    let runtime = types_runtime(&[("sleep", "types#sleep-ms", pool)]);
    assert!(runtime.warm_up().await.is_empty());
    let sleep = runtime.function("t:sleep").unwrap();
    assert_eq!(
        sleep.pool_stats().live,
        1,
        "warm_start creates min_size instances"
    );
    let calls = (0..3)
        .map(|_| spawn_call(&sleep, vec![json!(150)]))
        .collect();
    for result in join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(sleep.pool_stats().created, 3, "grew to max_size under load");
    wait_until("the pool shrinks to its floor", || {
        sleep.pool_stats().live == 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(sleep.pool_stats().live, 1, "never below min_size");
}

#[tokio::test]
async fn inline_pool_creates_an_instance_per_call_and_keeps_none() {
    let runtime = types_runtime(&[(
        "counter",
        "types#counter",
        "    pool:\n      type: inline\n",
    )]);
    let counter = runtime.function("t:counter").unwrap();
    for _ in 0..3 {
        assert_eq!(counter.call_json(vec![]).await.unwrap(), json!(1));
    }
    let stats = counter.pool_stats();
    assert_eq!((stats.created, stats.live), (3, 0), "{stats:?}");
}

#[tokio::test]
async fn instances_are_recycled_after_max_calls() {
    let runtime = types_runtime(&[(
        "counter",
        "types#counter",
        "    pool:\n      type: lazy\n      max_calls: 2\n",
    )]);
    let counter = runtime.function("t:counter").unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(counter.call_json(vec![]).await.unwrap());
    }
    assert_eq!(seen, [json!(1), json!(2), json!(1), json!(2), json!(1)]);
    assert_eq!(counter.pool_stats().created, 3);
}

#[tokio::test]
async fn a_trapped_instance_is_discarded_and_replaced() {
    let runtime = types_runtime(&[("counter", "types#counter", ""), ("boom", "types#boom", "")]);
    let (counter, boom) = (
        runtime.function("t:counter").unwrap(),
        runtime.function("t:boom").unwrap(),
    );
    assert_eq!(counter.call_json(vec![]).await.unwrap(), json!(1));
    assert_eq!(counter.call_json(vec![]).await.unwrap(), json!(2));
    boom.call_json(vec![]).await.unwrap_err();
    boom.call_json(vec![]).await.unwrap_err();
    let stats = boom.pool_stats();
    assert_eq!(
        (stats.created, stats.live),
        (2, 0),
        "each trap discarded its instance: {stats:?}"
    );
    assert_eq!(
        counter.call_json(vec![]).await.unwrap(),
        json!(3),
        "other functions are untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_the_engines_instance_slots_is_pool_full() {
    let path = wafer_guests::P2_TYPES;
    let entry = wasm_entry(
        "sleep",
        path,
        "types#sleep-ms",
        "    pool:\n      type: lazy\n      max_size: 8\n",
    );
    let engine = WaferEngine::new(&EngineSettings { max_instances: 2 }).unwrap();
    let runtime = Runtime::with_engine(
        registry(&dir_of(path), &[entry]),
        engine,
        Default::default(),
    )
    .unwrap();
    let sleep = runtime.function("t:sleep").unwrap();
    let calls = (0..4)
        .map(|_| spawn_call(&sleep, vec![json!(300)]))
        .collect();
    let results = join_all(calls).await;
    let full: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.to_string())
        .collect();
    assert!(!full.is_empty(), "4 concurrent instances fit in 2 slots?");
    for message in &full {
        assert!(
            message.starts_with("t:sleep: pool full: the engine's instance slots are all in use"),
            "{message}"
        );
    }
    assert!(
        results.iter().any(|r| r.is_ok()),
        "the calls that got slots succeed"
    );
    assert_eq!(
        sleep.call_json(vec![json!(1)]).await.unwrap(),
        json!(1),
        "healthy afterwards"
    );
}

#[tokio::test]
async fn a_guest_waiting_on_the_host_is_stopped_by_its_deadline() {
    let runtime = types_runtime(&[(
        "sleep",
        "types#sleep-ms",
        "    limits:\n      max_execution_ms: 50\n",
    )]);
    let err = runtime
        .call("t:sleep", vec![json!(5_000)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { limit_ms: 50, .. }),
        "{err}"
    );
    assert_eq!(
        runtime.call("t:sleep", vec![json!(1)]).await.unwrap(),
        json!(1)
    );
}

#[tokio::test]
async fn registry_pools_size_the_engine() {
    let yaml = "version: \"1.0\"\nnamespace: s\nentries:\n  - name: a\n    kind: function.wat\n    source: '(module)'\n    method: f\n    pool:\n      type: static\n      workers: 300\n  - name: b\n    kind: function.wat\n    source: '(module)'\n    method: f\n";
    let settings = EngineSettings::for_registry(&Registry::from_yaml("/s.yaml", yaml));
    assert_eq!(
        settings.max_instances, 400,
        "300 for a, 100 for b's default lazy pool"
    );
}

#[tokio::test]
async fn wrong_vals_are_an_argument_error_and_leave_the_instance_alone() {
    use wasmtime::component::Val;
    let runtime = types_runtime(&[("add", "add", "")]);
    let add = runtime.function("t:add").unwrap();
    assert_eq!(
        add.call_vals(&[Val::S32(1), Val::S32(2)]).await.unwrap(),
        [Val::S32(3)]
    );
    let err = add
        .call_vals(&[Val::S32(1), Val::String("2".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Arguments { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "t:add: args[1]: expected s32, found string"
    );
    let stats = add.pool_stats();
    assert_eq!(
        (stats.created, stats.live),
        (1, 1),
        "the warm instance was kept: {stats:?}"
    );
}
