// The Swift half of the interop fixture: the same values and transformations as
// CPeers/zoo_common.c, written against the types XDRGenPlugin generated from
// Fixtures/typezoo.x at build time, and the generated server protocol implemented with them.

import ONCRPC
import XDR

enum TypeZooModel {
    static func animal(
        _ name: String, tagSeed: UInt8, weight: Int64, id: UInt64, legs: [Int32], figure: Shape,
        tame: Bool, height: Double, speed: Float
    ) -> Animal {
        let tag = (0..<8).map { UInt8(truncatingIfNeeded: Int(tagSeed) + $0 * 17) }
        return Animal(name: name, tag: tag, weight: weight, id: id, legs: legs, figure: figure, tame: tame, height: height, speed: speed)
    }

    static var animals: AnimalList {
        [
            animal("lion", tagSeed: 1, weight: -5_000_000_000, id: 0xFEDC_BA98_7654_3210, legs: [1, 2, 3, 4], figure: .shapeCircle(7), tame: false, height: 1.25, speed: 3.5),
            animal("snake", tagSeed: 0xF0, weight: 1, id: 2, legs: [], figure: .shapeNone, tame: true, height: -0.5, speed: 0),
            animal("octopus", tagSeed: 0, weight: .max, id: 0, legs: [8], figure: .shapeRect(123_456_789_012), tame: true, height: 2, speed: 0.25),
            animal("unicorn", tagSeed: 0x55, weight: -1, id: .max, legs: [-1, .max], figure: .default(discriminant: .shapeOther, value: "horn"), tame: false, height: 1e100, speed: -1.5),
        ]
    }

    static var fixture: Zoo {
        Zoo(keeper: "Keeper of the zoo", animals: animals, blob: [0xDE, 0xAD, 0xBE, 0xEF, 0x01], counts: [-1, 0, .max], flags: 0x8000_0001, note: ZooNote(text: "fed at noon"))
    }

    static func transform(_ shape: Shape) -> Shape {
        switch shape {
        case let .shapeCircle(radius): return .shapeCircle(radius &* 2)
        case let .shapeSquare(side): return .shapeSquare(side &+ 1)
        case let .shapeRect(side): return .shapeRect(side &- 1)
        case .shapeNone: return .default(discriminant: .shapeOther, value: "was none")
        case .default: return .shapeNone
        }
    }

    static func transform(_ zoo: Zoo) -> Zoo {
        var result = zoo
        result.keeper += "!"
        result.animals = zoo.animals.reversed().map { animal in
            var a = animal
            a.weight = ~a.weight
            a.id = ~a.id
            a.tame.toggle()
            a.legs = a.legs.map { ~$0 }
            a.figure = transform(a.figure)
            a.height *= 2
            a.speed *= 2
            return a
        }
        result.blob.reverse()
        result.counts = zoo.counts.map { ~$0 }
        result.flags = ~zoo.flags
        result.note = zoo.note == nil ? ZooNote(text: "added") : nil
        return result
    }

    static func find(_ name: String) -> LookupResult {
        if name == "all" { return .animals(animals) }
        if let found = animals.first(where: { $0.name == name }) { return .animals([found]) }
        return .default(discriminant: 100 + Int32(name.utf8.count))
    }

    /// The shapes zoo_client sends, in order.
    static let clientShapes: [Shape] = [
        .shapeCircle(21), .shapeSquare(-9), .shapeRect(1 << 40), .shapeNone,
        .default(discriminant: .shapeOther, value: "sixteen-chars-ok"),
    ]

    static let clientNames = ["all", "octopus", "nobody"]

    /// What zoo_client prints against a correct server: label → hex of the XDR answer.
    static var expectedClientOutput: [(String, String)] {
        var lines = [("arguments", hex(fixture)), ("echo", hex(fixture)), ("transform", hex(transform(fixture)))]
        for (i, shape) in clientShapes.enumerated() { lines.append(("shape\(i)", hex(transform(shape)))) }
        for name in clientNames { lines.append(("find-\(name)", hex(find(name)))) }
        return lines
    }
}

/// The generated server protocol, implemented with the model.
struct ZooService: TypezooV1Service {
    func echo(_ argument: Zoo, request: RPCRequest) async throws -> Zoo { argument }
    func transform(_ argument: Zoo, request: RPCRequest) async throws -> Zoo { TypeZooModel.transform(argument) }
    func shape(_ argument: Shape, request: RPCRequest) async throws -> Shape { TypeZooModel.transform(argument) }
    func find(_ argument: String, request: RPCRequest) async throws -> LookupResult { TypeZooModel.find(argument) }
}
