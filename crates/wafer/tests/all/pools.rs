//! Each pool kind's observable behaviour: how many instances exist, how
//! many calls run and wait, and what is refused. Calls that must overlap
//! are `hold` calls, held inside the guest until the test releases them.

use std::sync::Arc;

use serde_json::{Value, json};
use wafer::engine::{EngineSettings, WaferEngine};
use wafer::{Error, Function, Input, Registry, Runtime};

use super::util::{
    Holder, LOOPBACK_GRANT, dir_of, registry, types_runtime, wait_until, wasm_entry,
};

async fn call(function: &Function, args: Vec<Value>) -> wafer::Result<Value> {
    function
        .invoke(Input::Json(args))
        .await
        .map(wafer::Output::into_json)
}

fn spawn_call(
    function: &Arc<Function>,
    args: Vec<Value>,
) -> tokio::task::JoinHandle<wafer::Result<Value>> {
    let function = function.clone();
    tokio::spawn(async move { call(&function, args).await })
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

/// `hold` calls, `calls` of them inside the guest at once, then released.
async fn hold_together(hold: &Arc<Function>, holder: &mut Holder, calls: usize) {
    let tasks = (0..calls)
        .map(|_| spawn_call(hold, vec![holder.addr()]))
        .collect();
    holder.wait_for(calls).await;
    holder.release();
    for result in join_all(tasks).await {
        assert_eq!(result.unwrap(), json!(0));
    }
}

/// A runtime with `t:hold` in `pool` (YAML lines), allowed to connect.
async fn hold_function(pool: &str) -> (Runtime, Arc<Function>) {
    let extra = format!("{pool}{LOOPBACK_GRANT}");
    let runtime = types_runtime(&[("hold", "types#hold", &extra)]);
    let hold = runtime.function("t:hold").await.unwrap();
    (runtime, hold)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_grows_on_demand_and_drops_idle_instances() {
    let (_runtime, hold) = hold_function(
        "    pool:\n      type: lazy\n      max_size: 4\n      idle_timeout_ms: 1000\n",
    )
    .await;
    assert_eq!(hold.pool_stats().live, 0, "lazy pools start empty");
    let mut holder = Holder::new().await;
    hold_together(&hold, &mut holder, 4).await;
    // Only `created` cannot change under the reaper's feet.
    assert_eq!(hold.pool_stats().created, 4);
    wait_until("idle instances are dropped", || hold.pool_stats().live == 0).await;
    hold_together(&hold, &mut holder, 1).await;
    assert_eq!(
        hold.pool_stats().created,
        5,
        "a new instance after the idle ones were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pool_keeps_its_size_and_refuses_calls_beyond_its_queue() {
    let (_runtime, hold) = hold_function(
        "    pool:\n      type: static\n      size: 2\n      workers: 1\n      buffer: 1\n",
    )
    .await;
    assert_eq!(hold.warm_up().await.unwrap(), 2);
    assert_eq!(hold.pool_stats().live, 2);
    let mut holder = Holder::new().await;
    let running = spawn_call(&hold, vec![holder.addr()]);
    holder.wait_for(1).await;
    let queued = spawn_call(&hold, vec![holder.addr()]);
    wait_until("one call waits", || hold.pool_stats().waiting == 1).await;
    let refused = call(&hold, vec![holder.addr()]).await.unwrap_err();
    assert!(matches!(refused, Error::PoolFull { .. }), "{refused}");
    assert_eq!(
        refused.to_string(),
        "t:hold: pool full: 1 calls running and 1 waiting"
    );
    holder.release();
    assert_eq!(running.await.unwrap().unwrap(), json!(0));
    holder.wait_for(1).await;
    holder.release();
    assert_eq!(queued.await.unwrap().unwrap(), json!(0));
    let stats = hold.pool_stats();
    assert_eq!(
        (stats.created, stats.live, stats.running, stats.waiting),
        (2, 2, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_pool_grows_with_load_and_shrinks_to_its_floor() {
    let (runtime, hold) = hold_function(
        "    pool:\n      type: adaptive\n      min_size: 1\n      max_size: 3\n      warm_start: true\n      idle_timeout_ms: 200\n",
    )
    .await;
    assert!(runtime.warm_up().await.is_empty());
    assert_eq!(
        hold.pool_stats().live,
        1,
        "warm_start creates min_size instances"
    );
    let mut holder = Holder::new().await;
    hold_together(&hold, &mut holder, 3).await;
    assert_eq!(hold.pool_stats().created, 3, "grew to max_size under load");
    // Trimming never goes below the floor: see the pool's own unit tests.
    wait_until("the pool shrinks to its floor", || {
        hold.pool_stats().live == 1
    })
    .await;
}

#[tokio::test]
async fn inline_pool_creates_an_instance_per_call_and_keeps_none() {
    let runtime = types_runtime(&[(
        "counter",
        "types#counter",
        "    pool:\n      type: inline\n",
    )]);
    let counter = runtime.function("t:counter").await.unwrap();
    for _ in 0..3 {
        assert_eq!(call(&counter, vec![]).await.unwrap(), json!(1));
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
    let counter = runtime.function("t:counter").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(call(&counter, vec![]).await.unwrap());
    }
    assert_eq!(seen, [json!(1), json!(2), json!(1), json!(2), json!(1)]);
    assert_eq!(counter.pool_stats().created, 3);
}

#[tokio::test]
async fn a_trapped_instance_is_discarded_and_replaced() {
    let runtime = types_runtime(&[("misbehave", "types#misbehave", "")]);
    let misbehave = runtime.function("t:misbehave").await.unwrap();
    assert_eq!(
        call(&misbehave, vec![json!("count")]).await.unwrap(),
        json!(1)
    );
    assert_eq!(
        call(&misbehave, vec![json!("count")]).await.unwrap(),
        json!(2)
    );
    for _ in 0..2 {
        let err = call(&misbehave, vec![json!("trap")]).await.unwrap_err();
        assert!(matches!(err, Error::Trap { .. }), "{err}");
    }
    let stats = misbehave.pool_stats();
    assert_eq!(
        (stats.created, stats.live),
        (2, 0),
        "each trap discarded its instance: {stats:?}"
    );
    assert_eq!(
        call(&misbehave, vec![json!("count")]).await.unwrap(),
        json!(1),
        "a fresh instance, without the trapped one's state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_the_engines_instance_slots_is_pool_full() {
    let path = wafer_guests::P2_TYPES;
    let entry = wasm_entry(
        "hold",
        path,
        "types#hold",
        &format!("    pool:\n      type: lazy\n      max_size: 8\n{LOOPBACK_GRANT}"),
    );
    let engine = WaferEngine::new(&EngineSettings { max_instances: 2 }).unwrap();
    let runtime = Runtime::with_engine(
        registry(&dir_of(path), &[entry]),
        engine,
        Default::default(),
    )
    .unwrap();
    let hold = runtime.function("t:hold").await.unwrap();
    let mut holder = Holder::new().await;
    let holding: Vec<_> = (0..2)
        .map(|_| spawn_call(&hold, vec![holder.addr()]))
        .collect();
    holder.wait_for(2).await;
    let full = call(&hold, vec![holder.addr()]).await.unwrap_err();
    assert!(
        full.to_string()
            .starts_with("t:hold: pool full: the engine's instance slots are all in use"),
        "{full}"
    );
    holder.release();
    for result in join_all(holding).await {
        assert_eq!(
            result.unwrap(),
            json!(0),
            "the calls that got slots succeed"
        );
    }
    hold_together(&hold, &mut holder, 1).await;
}

#[tokio::test]
async fn a_guest_waiting_on_the_host_is_stopped_by_its_deadline() {
    let runtime = types_runtime(&[(
        "sleep",
        "types#sleep-ms",
        "    limits:\n      max_execution_ms: 1000\n",
    )]);
    let err = runtime
        .call("t:sleep", vec![json!(600_000)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DeadlineExceeded { limit_ms: 1000, .. }),
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
    let add = runtime.function("t:add").await.unwrap();
    let sum = add
        .invoke(Input::Vals(vec![Val::S32(1), Val::S32(2)]))
        .await
        .unwrap();
    assert_eq!(sum.into_vals().unwrap(), [Val::S32(3)]);
    let err = add
        .invoke(Input::Vals(vec![Val::S32(1), Val::String("2".into())]))
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
