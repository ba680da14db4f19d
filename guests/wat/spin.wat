;; Never returns: an endless loop with no calls, stopped only by the
;; epoch deadline.
(module
  (func (export "spin") (result i32)
    (loop $forever (br $forever))
    i32.const 0))
