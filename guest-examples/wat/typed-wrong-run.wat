;; A typed step (it exports weir:step/handler@0.1.0) whose `run` takes and returns a u32
;; instead of weir's `func(input: string) -> result<string, step-error>`: refused at
;; upload, naming the signature it has.
(component
  (core module $m
    (func (export "run") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (func $run (param "input" u32) (result u32) (canon lift (core func $i "run")))
  (instance $handler (export "run" (func $run)))
  (export "weir:step/handler@0.1.0" (instance $handler)))
