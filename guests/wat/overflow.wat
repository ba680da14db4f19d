;; Recurses without end: a stack overflow.
(module
  (func $down (export "overflow") (param i32) (result i32)
    local.get 0
    i32.const 1
    i32.add
    call $down))
