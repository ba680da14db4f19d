;; A Benthos guest shaped like Benthos' own Rust example: its `allocate`
;; answers the same pointer (1) for every size, as that example's does
;; (`Vec::with_capacity(n).into_boxed_slice()` keeps no capacity), and,
;; like any wasm32-wasip1 build of it, it exports no `__heap_base`. Its
;; `deallocate` traps when handed that pointer: a real allocator would have
;; its heap corrupted. The output (the message and "!") is written at
;; 0x1000 and handed over for the host to give back, which is harmless.
(module
  (import "benthos_wasm" "v0_msg_as_bytes" (func $as_bytes (result i64)))
  (import "benthos_wasm" "v0_msg_set_bytes" (func $set_bytes (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1))
  (func (export "deallocate") (param $ptr i32) (param i32)
    (if (i32.eq (local.get $ptr) (i32.const 1)) (then unreachable)))
  (func (export "process")
    (local $message i64) (local $len i32)
    (local.set $message (call $as_bytes))
    (local.set $len (i32.wrap_i64 (local.get $message)))
    (memory.copy
      (i32.const 0x1000)
      (i32.wrap_i64 (i64.shr_u (local.get $message) (i64.const 32)))
      (local.get $len))
    (i32.store8 (i32.add (i32.const 0x1000) (local.get $len)) (i32.const 33))
    (call $set_bytes (i32.const 0x1000) (i32.add (local.get $len) (i32.const 1))))
)
