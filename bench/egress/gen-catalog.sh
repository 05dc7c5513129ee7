#!/bin/sh
# Regenerates Sources/StepGuardEgress/ServiceCatalog+BuiltIn.swift from rules/services/*.yaml.
# Run from the repository root. ServiceCatalogTests.builtInMatchesFiles keeps the two equal.
set -eu
out=Sources/StepGuardEgress/ServiceCatalog+BuiltIn.swift
{
  echo "// Generated from rules/services/*.yaml by bench/egress/gen-catalog.sh; a test keeps them equal."
  echo "let builtInServiceYAML: [String: String] = ["
  for f in rules/services/*.yaml; do
    n=$(basename "$f" .yaml)
    printf '    "%s": #"""\n' "$n"
    sed 's/^/    /' "$f"
    printf '    """#,\n'
  done
  echo "]"
} > "$out"
