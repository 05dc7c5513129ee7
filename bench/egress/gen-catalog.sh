#!/bin/sh
# Regenerates Sources/StepGuardEgress/ServiceCatalog+BuiltIn.swift from rules/services/*.yaml.
# Run from the repository root. ServiceCatalogTests.builtInCatalogMatchesTheFilesAndHasEveryService keeps
# the two equal. The examples (the last key of each file) are left out: they are test data, and
# parsing them would add about 3 ms to every `stepguard run`.
set -eu
out=Sources/StepGuardEgress/ServiceCatalog+BuiltIn.swift
{
  echo "// Generated from rules/services/*.yaml by bench/egress/gen-catalog.sh; a test keeps them equal."
  echo "let builtInServiceYAML: [String: String] = ["
  for f in rules/services/*.yaml; do
    n=$(basename "$f" .yaml)
    printf '    "%s": #"""\n' "$n"
    sed '/^examples:/,$d; s/^/    /' "$f"
    printf '    """#,\n'
  done
  echo "]"
} > "$out"
