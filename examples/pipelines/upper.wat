;; A Benthos `wasm` processor guest, in place: it uppercases each message.
;;
;; Benthos' message ABI (as `benthos_wasm` defines it): the host copies the
;; message into a buffer from the guest's `allocate`, `process` reads it
;; with `v0_msg_as_bytes` and hands the result back with
;; `v0_msg_set_bytes`. This guest keeps one buffer at offset 1024, grown to
;; fit the largest message, so `deallocate` has nothing to do.
(module
  (import "benthos_wasm" "v0_msg_as_bytes" (func $as_bytes (result i64)))
  (import "benthos_wasm" "v0_msg_set_bytes" (func $set_bytes (param i32 i32)))
  (memory (export "memory") 1)

  (func (export "allocate") (param $len i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.shr_u (i32.add (local.get $len) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))))
    (i32.const 1024))

  (func (export "deallocate") (param i32 i32))

  (func (export "process")
    (local $message i64) (local $at i32) (local $end i32) (local $byte i32)
    (local.set $message (call $as_bytes))
    (local.set $at (i32.wrap_i64 (i64.shr_u (local.get $message) (i64.const 32))))
    (local.set $end (i32.add (local.get $at) (i32.wrap_i64 (local.get $message))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $byte (i32.load8_u (local.get $at)))
        (if (i32.and (i32.ge_u (local.get $byte) (i32.const 97))
                     (i32.le_u (local.get $byte) (i32.const 122)))
          (then (i32.store8 (local.get $at) (i32.sub (local.get $byte) (i32.const 32)))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (call $set_bytes
      (i32.wrap_i64 (i64.shr_u (local.get $message) (i64.const 32)))
      (i32.wrap_i64 (local.get $message))))
)
