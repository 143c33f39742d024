import Foundation

/// The error types a loop with `reconnect` retries (disnake's `_valid_exception`).
struct ErrorFilter {
    private(set) var types: [any Error.Type]
    /// Whether errors conforming to ``TransientError`` are retried; `clearErrorTypes()` turns
    /// this off too, as the seed's `clear_exception_types` removes every handled type.
    private(set) var handlesTransientErrors: Bool

    /// The Swift counterparts of the network errors disnake retries, plus ``TransientError``.
    static var defaults: ErrorFilter {
        ErrorFilter(types: defaultTypes, handlesTransientErrors: true)
    }

    /// One array that every loop's filter shares until it is changed: built per loop, it cost
    /// each loop an allocation of 64 bytes.
    private static let defaultTypes: [any Error.Type] = [POSIXError.self, URLError.self]

    func handles(_ error: any Error) -> Bool {
        if handlesTransientErrors, error is any TransientError { return true }
        return types.contains { Self.error(error, isA: $0) }
    }

    mutating func add(_ newTypes: [any Error.Type]) {
        for type in newTypes where !types.contains(where: { ObjectIdentifier($0) == ObjectIdentifier(type) }) {
            types.append(type)
        }
    }

    /// Removes the types; true when every one of them was handled before.
    mutating func remove(_ removed: [any Error.Type]) -> Bool {
        var allFound = true
        for type in removed {
            if let index = types.firstIndex(where: { ObjectIdentifier($0) == ObjectIdentifier(type) }) {
                types.remove(at: index)
            } else {
                allFound = false
            }
        }
        return allFound
    }

    mutating func clear() {
        types.removeAll()
        handlesTransientErrors = false
    }

    /// `error is T` for a type only known at run time: the existential metatype is opened, so
    /// subclasses and bridged errors match as `is` would.
    private static func error<T: Error>(_ error: any Error, isA type: T.Type) -> Bool {
        error is T
    }
}
