/// An immutable value behind a reference: for a rarely set field whose value is large, so that
/// the structs that hold it pay one pointer when it is unset.
final class Boxed<Value: Sendable>: Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}
