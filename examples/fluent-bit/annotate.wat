;; A Fluent Bit `wasm` filter in json mode, exporting no allocator (as
;; Fluent Bit's Rust examples do): the host copies the tag and the record,
;; each NUL-terminated, into pages it grows for itself.
;;
;; It drops debug records (answering NULL) and adds `"filtered_by":"wasm"`
;; to the others: the record is copied to this module's own answer buffer
;; at 1024, its closing brace replaced, and a pointer to the new,
;; NUL-terminated JSON answered. A record too large for the buffer is
;; answered as it came.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\"level\":\"debug\"")
  (data (i32.const 48) ",\"filtered_by\":\"wasm\"}\00")

  ;; Whether the 15 bytes at 16 occur in [at, at + len).
  (func $is_debug (param $at i32) (param $len i32) (result i32)
    (local $end i32) (local $i i32)
    (local.set $end (i32.sub (i32.add (local.get $at) (local.get $len)) (i32.const 15)))
    (block $no
      (loop $scan
        (br_if $no (i32.gt_s (local.get $at) (local.get $end)))
        (local.set $i (i32.const 0))
        (block $differs
          (loop $compare
            (br_if $differs
              (i32.ne (i32.load8_u (i32.add (local.get $at) (local.get $i)))
                      (i32.load8_u (i32.add (i32.const 16) (local.get $i)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $compare (i32.lt_u (local.get $i) (i32.const 15)))
            (return (i32.const 1))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $scan)))
    (i32.const 0))

  (func (export "annotate")
    (param $tag i32) (param $tag_len i32) (param $sec i32) (param $nsec i32)
    (param $record i32) (param $len i32) (result i32)
    (local $brace i32)
    (if (call $is_debug (local.get $record) (local.get $len))
      (then (return (i32.const 0))))
    (if (i32.gt_u (local.get $len) (i32.const 60000))
      (then (return (local.get $record))))
    ;; Everything up to the closing brace, then the field and a new brace.
    (local.set $brace (i32.sub (local.get $len) (i32.const 1)))
    (memory.copy (i32.const 1024) (local.get $record) (local.get $brace))
    (if (i32.eq (i32.load8_u (i32.sub (i32.add (i32.const 1024) (local.get $brace)) (i32.const 1)))
                (i32.const 123)) ;; `{`: an empty record needs no comma.
      (then (memory.copy (i32.add (i32.const 1024) (local.get $brace)) (i32.const 49) (i32.const 22)))
      (else (memory.copy (i32.add (i32.const 1024) (local.get $brace)) (i32.const 48) (i32.const 23))))
    (i32.const 1024))
)
