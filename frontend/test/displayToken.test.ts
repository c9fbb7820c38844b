import { describe, expect, it } from "vitest";
import { displayToken } from "../src/tokens/displayToken";
import { tokenKind } from "../src/tokens/tokenKind";

describe("displayToken", () => {
  it("shows line breaks and tabs as visible marks", () => {
    expect(displayToken("a\nb")).toBe("a↵b");
    expect(displayToken("\r\n")).toBe("␍↵");
    expect(displayToken("\t")).toBe("⇥");
  });

  it("shows other control characters as \\xNN", () => {
    expect(displayToken("a\u0000b\u007f")).toBe("a\\x00b\\x7f");
  });

  it("shows a whitespace-only token as middle dots and the empty token as ∅", () => {
    expect(displayToken("   ")).toBe("···");
    expect(displayToken("")).toBe("∅");
  });

  it("leaves ordinary text, leading spaces and markup characters as they are", () => {
    expect(displayToken(" cat")).toBe(" cat");
    expect(displayToken("<b>")).toBe("<b>");
  });
});

describe("tokenKind", () => {
  it("recognises special tokens of common tokenizers", () => {
    for (const t of ["<|endoftext|>", "<s>", "</s>", "<bos>", "<eos>", "<pad>", "[CLS]", "[SEP]"]) {
      expect(tokenKind(t)).toBe("special");
    }
  });

  it("does not take ordinary angle-bracket text for a special token", () => {
    expect(tokenKind("<b>")).toBe("text");
    expect(tokenKind("<img src=x>")).toBe("text");
  });

  it("classifies newlines and whitespace", () => {
    expect(tokenKind(" \n")).toBe("newline");
    expect(tokenKind("  ")).toBe("whitespace");
    expect(tokenKind("cat")).toBe("text");
  });
});
