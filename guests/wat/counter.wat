;; Counts its calls in a global: 1, 2, 3... on a reused instance; always 1
;; on a fresh one.
(module
  (global $calls (mut i32) (i32.const 0))
  (func (export "counter") (result i32)
    global.get $calls
    i32.const 1
    i32.add
    global.set $calls
    global.get $calls))
