// The lookup every server makes (a client's active public key) as a prepared statement:
// postgres-nio prepares it once per pooled connection and then only binds and executes, where
// a plain query is parsed and planned by the server on every call.

import PostgresNIO

struct ActiveKeyStatement: PostgresPreparedStatement {
    typealias Row = String

    static let name = "securerpc_active_key"
    static let sql = "SELECT public_key FROM key_entry WHERE netname = $1 AND mechanism = $2 AND state = 'active'"
    static let bindingDataTypes: [PostgresDataType] = [.text, .text]

    var netname: String
    var mechanism: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(netname)
        bindings.append(mechanism)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String {
        try row.decode(String.self)
    }
}
