// Malformed interface definitions: each gets one error naming file, line and column and
// what was expected, and the xdrgen command writes no output for them. Also the decode
// side of bad input: bounds, undeclared enum values and hostile list lengths, checked on
// the plugin-generated typezoo types.

import NIOCore
import XCTest
import XDR
@testable import XDRGenCore

final class BadInputTests: XCTestCase {
    private func error(_ text: String, file: String = "bad.x") -> String {
        do {
            _ = try XDRGen.generate(text: text, file: file)
            return "no error"
        } catch {
            return error.description
        }
    }

    func testSyntaxErrorsNameFileLineColumnAndWhatWasExpected() {
        let cases: [(String, String)] = [
            ("struct s {\n    int a\n};\n", "bad.x:3:1: error: expected ';' after the struct member, found '}'"),
            ("const X = ;", "bad.x:1:11: error: expected a number or constant name, found ';'"),
            ("typedef string s;", "bad.x:1:17: error: expected '<' after the string name (strings are variable-length), found ';'"),
            ("enum e { A = 1, B = 2 ", "bad.x:1:23: error: expected '}' or ',' in the enum body, found end of file"),
            ("union u switch (int d) { };", "bad.x:1:26: error: expected 'case' or 'default' in the union body, found '}'"),
            ("program P { version V { int F(int) = 1; } = 1; } = 0x20000001", "bad.x:1:62: error: expected ';' after the program number, found end of file"),
            ("struct s { int a; };\n\n  bogus", "bad.x:3:3: error: expected a definition ('const', 'typedef', 'enum', 'struct', 'union' or 'program'), found 'bogus'"),
            ("/* never closed", "bad.x:1:1: error: unterminated comment (expected '*/' before end of file)"),
            ("const X = 12abc;", "bad.x:1:11: error: malformed number '12abc'"),
            ("struct s { int a; } @", "bad.x:1:21: error: unexpected character '@'"),
            ("#include \"other.x\"\n", "bad.x:1:1: error: preprocessor directive '#include' needs the C preprocessor (run xdrgen with --cpp)"),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(error(text), expected, "for input: \(text)")
        }
    }

    func testSemanticErrorsPointAtTheUse() {
        let cases: [(String, String)] = [
            ("struct s {\n  missing_t x;\n};", "bad.x:2:3: error: unknown type 'missing_t' (define it, or declare it external with --external missing_t)"),
            ("typedef int a<MAX>;", "bad.x:1:15: error: unknown constant 'MAX'"),
            ("struct s { int a; };\nstruct s { int b; };", "bad.x:2:8: error: 's' is already defined at bad.x:1:8"),
            ("struct s { int a; int a; };", "bad.x:1:23: error: duplicate member 'a'"),
            ("union u switch (int d) { case 1: int a; case 1: int b; };", "bad.x:1:46: error: case value 1 already has an arm at bad.x:1:31"),
            ("union u switch (hyper d) { case 1: void; };", "bad.x:1:23: error: a union discriminant must be int, unsigned int, bool or an enum"),
            ("typedef opaque o[-1];", "bad.x:1:16: error: size -1 must be between 0 and 2^32-1"),
            ("struct tree { int v; tree *left; tree *right; };",
             "bad.x:1:28: error: 'tree' contains itself through 'left'; recursive types are supported as linked lists only (`struct tree { …; tree *next; }` with the pointer last)"),
            ("const S = \"text\";\ntypedef int a<S>;", "bad.x:2:15: error: 'S' is a string constant; a number is needed here"),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(error(text), expected, "for input: \(text)")
        }
    }

    /// Line markers from the C preprocessor map positions back to the included file.
    func testErrorsAfterPreprocessingPointIntoTheIncludedFile() throws {
        let directory = try TestEnvironment.temporaryDirectory("cpp")
        defer { try? FileManager.default.removeItem(at: directory) }
        try "const A = 1;\n\nstruct inner {\n    int x\n};\n".write(to: directory.appendingPathComponent("inner.x"), atomically: true, encoding: .utf8)
        let main = directory.appendingPathComponent("main.x")
        try "#include \"inner.x\"\nconst B = 2;\n".write(to: main, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try XDRGen.generate(path: main.path)) { error in
            XCTAssertEqual((error as? XDRGenError)?.description, "\(directory.path)/inner.x:5:1: error: expected ';' after the struct member, found '}'")
        }
    }

    /// The command reports the error on stderr, exits non-zero and writes no output file.
    func testCommandWritesNothingForABadFile() throws {
        let directory = try TestEnvironment.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("broken.x")
        try "const OK = 1;\nstruct s {\n    string name<OK>\n    int x;\n};\n".write(to: input, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("broken.swift")
        let run = try runProcess(TestEnvironment.xdrgen.path, [input.path, "-o", output.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.errors, "\(input.path):4:5: error: expected ';' after the struct member, found 'int'\n")
        XCTAssertEqual(run.output, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }

    // MARK: decoding hostile data with the generated types

    func testDeclaredBoundsAreEnforcedOnDecode() throws {
        var animal = TypeZooModel.animals[0]
        animal.legs = [1, 2, 3, 4, 5]  // ZOO_MAX_LEGS is 4; the encoder does not check
        let bytes = Zoo(keeper: "k", animals: [animal], blob: [], counts: [0, 0, 0], flags: 0, note: nil).xdrEncoded()
        XCTAssertThrowsError(try bytes.decodeXDRExactly(Zoo.self)) { error in
            XCTAssertEqual(error as? XDRError, .lengthExceedsMaximum(length: 5, maximum: 4))
        }
        var shape = ByteBuffer()
        shape.writeXDR(Int32(99))  // not a shape_kind
        XCTAssertThrowsError(try shape.decodeXDRExactly(Shape.self)) { error in
            XCTAssertEqual(error as? XDRError, .invalidEnumValue(type: "ShapeKind", value: 99))
        }
        var blob = ByteBuffer()
        blob.writeXDR("k")
        blob.writeXDR(false)
        blob.writeXDR(UInt32(0xFFFF_FFFF))  // opaque<> length far beyond the cap and the data
        XCTAssertThrowsError(try blob.decodeXDRExactly(Zoo.self)) { error in
            XCTAssertEqual(error as? XDRError, .lengthExceedsMaximum(length: 0xFFFF_FFFF, maximum: 1 << 20))
        }
    }

    /// A long chain decodes iteratively (a recursive decoder would overflow the stack);
    /// a chain cut short is truncation, not a crash.
    func testLongListDecodesIterativelyAndTruncatedListFails() throws {
        let item = Animal(name: "", tag: [UInt8](repeating: 0, count: 8), weight: 0, id: 0, legs: [], figure: .shapeNone, tame: false, height: 0, speed: 0)
        let count = 50_000
        var buffer = ByteBuffer()
        LookupResult.animals(Array(repeating: item, count: count)).encode(into: &buffer)
        guard case let .animals(list) = try buffer.decodeXDRExactly(LookupResult.self) else {
            return XCTFail("wrong arm")
        }
        XCTAssertEqual(list.count, count)
        let truncated = buffer.getSlice(at: 0, length: buffer.readableBytes - 4)!
        XCTAssertThrowsError(try truncated.decodeXDRExactly(LookupResult.self))
    }

    func testNamesFollowSwiftConventions() {
        XCTAssertEqual(Naming.upperCamel("nfs_fh"), "NfsFh")
        XCTAssertEqual(Naming.upperCamel("rpcb_entry_list_ptr"), "RpcbEntryListPtr")
        XCTAssertEqual(Naming.lowerCamel("RPCBPROC_GETADDR"), "rpcbprocGetaddr")
        XCTAssertEqual(Naming.lowerCamel("zo_type"), "zoType")
        XCTAssertEqual(Naming.lowerCamel("fileName"), "fileName")
        XCTAssertEqual(Naming.lowerCamel("XDRThing"), "xdrThing")
        XCTAssertEqual(Naming.escaped("default"), "`default`")
    }
}
