;; Traps at once: `unreachable`.
(module
  (func (export "trap") (result i32)
    unreachable))
