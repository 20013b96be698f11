;; Hostile: a component that imports an interface weir does not provide. weir must refuse
;; it at upload/deploy with a message naming the import.
(component
  (import "acme:secret/keys@1.0.0" (instance
    (export "steal" (func (result string))))))
