"""A GitHub-hosted ubuntu-24.04 runner's environment as a step sees it: the names the image and
the runner set, with typical values and no secret (so that `run` lets the step start). `run`
classifies every variable before each step; this is the size of environment it meets on real
runners (106 variables), where a test machine's shell has a third of that.

    python3 bench/start-stages.py --github-runner-environment …
"""
def github_runner_environment(home="/home/runner"):
    """Name to value, as a dict."""
    tools = "/opt/hostedtoolcache"
    env = {
        "ACCEPT_EULA": "Y", "ACTIONS_RUNNER_ACTION_ARCHIVE_CACHE": "/opt/actionarchivecache", "AGENT_TOOLSDIRECTORY": tools,
        "ANDROID_HOME": "/usr/local/lib/android/sdk", "ANDROID_NDK": "/usr/local/lib/android/sdk/ndk/27.2.12479018",
        "ANDROID_NDK_HOME": "/usr/local/lib/android/sdk/ndk/27.2.12479018", "ANDROID_NDK_LATEST_HOME": "/usr/local/lib/android/sdk/ndk/28.0.13004108",
        "ANDROID_NDK_ROOT": "/usr/local/lib/android/sdk/ndk/27.2.12479018", "ANDROID_SDK_ROOT": "/usr/local/lib/android/sdk",
        "ANT_HOME": "/usr/share/ant", "AZURE_EXTENSION_DIR": "/opt/az/azcliextensions", "BOOTSTRAP_HASKELL_NONINTERACTIVE": "1",
        "CHROME_BIN": "/usr/bin/google-chrome", "CHROMEWEBDRIVER": "/usr/local/share/chromedriver-linux64", "CI": "true",
        "CONDA": "/usr/share/miniconda", "DEBIAN_FRONTEND": "noninteractive", "DEPLOYMENT_BASEPATH": "/opt/runner",
        "DOTNET_MULTILEVEL_LOOKUP": "0", "DOTNET_NOLOGO": "1", "DOTNET_SKIP_FIRST_TIME_EXPERIENCE": "1", "EDGEWEBDRIVER": "/usr/local/share/edge_driver",
        "GECKOWEBDRIVER": "/usr/local/share/gecko_driver", "GHCUP_INSTALL_BASE_PREFIX": "/usr/local", "GITHUB_ACTION": "__run_2",
        "GITHUB_ACTION_REF": "", "GITHUB_ACTION_REPOSITORY": "", "GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GITHUB_ACTOR_ID": "583231",
        "GITHUB_API_URL": "https://api.github.com", "GITHUB_BASE_REF": "", "GITHUB_ENV": "/home/runner/work/_temp/_runner_file_commands/set_env_3f1c2a",
        "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": "/home/runner/work/_temp/_github_workflow/event.json", "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
        "GITHUB_HEAD_REF": "", "GITHUB_JOB": "build", "GITHUB_OUTPUT": "/home/runner/work/_temp/_runner_file_commands/set_output_3f1c2a",
        "GITHUB_PATH": "/home/runner/work/_temp/_runner_file_commands/add_path_3f1c2a", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
        "GITHUB_REF_PROTECTED": "true", "GITHUB_REF_TYPE": "branch", "GITHUB_REPOSITORY": "octo-org/octo-repo", "GITHUB_REPOSITORY_ID": "957014466",
        "GITHUB_REPOSITORY_OWNER": "octo-org", "GITHUB_REPOSITORY_OWNER_ID": "9919", "GITHUB_RETENTION_DAYS": "90", "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_RUN_ID": "12210123456", "GITHUB_RUN_NUMBER": "118", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": "ffac537e6cbbf934b08745a378932722df287a53",
        "GITHUB_STATE": "/home/runner/work/_temp/_runner_file_commands/save_state_3f1c2a", "GITHUB_STEP_SUMMARY": "/home/runner/work/_temp/_runner_file_commands/step_summary_3f1c2a",
        "GITHUB_TRIGGERING_ACTOR": "octocat", "GITHUB_WORKFLOW": "CI", "GITHUB_WORKFLOW_REF": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
        "GITHUB_WORKFLOW_SHA": "ffac537e6cbbf934b08745a378932722df287a53", "GITHUB_WORKSPACE": "/home/runner/work/octo-repo/octo-repo",
        "GOROOT_1_22_X64": tools + "/go/1.22.10/x64", "GOROOT_1_23_X64": tools + "/go/1.23.4/x64", "GRADLE_HOME": "/usr/share/gradle-8.12",
        "HOME": home, "HOMEBREW_CLEANUP_PERIODIC_FULL_DAYS": "3650", "HOMEBREW_NO_AUTO_UPDATE": "1", "ImageOS": "ubuntu24", "ImageVersion": "20250105.1.0",
        "INVOCATION_ID": "d4b5c9b0e1f44a0f8a3c6de2f6e1a7b2", "JAVA_HOME": "/usr/lib/jvm/temurin-17-jdk-amd64", "JAVA_HOME_11_X64": "/usr/lib/jvm/temurin-11-jdk-amd64",
        "JAVA_HOME_17_X64": "/usr/lib/jvm/temurin-17-jdk-amd64", "JAVA_HOME_21_X64": "/usr/lib/jvm/temurin-21-jdk-amd64", "JAVA_HOME_8_X64": "/usr/lib/jvm/temurin-8-jdk-amd64",
        "LANG": "C.UTF-8", "MEMORY_PRESSURE_WATCH": "/sys/fs/cgroup/system.slice/hosted-compute-agent.service/memory.pressure",
        "NVM_DIR": "/home/runner/.nvm", "PIPX_BIN_DIR": "/opt/pipx_bin", "PIPX_HOME": "/opt/pipx", "POWERSHELL_DISTRIBUTION_CHANNEL": "GitHub-Actions-ubuntu24",
        "RUNNER_ARCH": "X64", "RUNNER_ENVIRONMENT": "github-hosted", "RUNNER_NAME": "GitHub Actions 12", "RUNNER_OS": "Linux",
        "RUNNER_PERFLOG": "/home/runner/perflog", "RUNNER_TEMP": "/home/runner/work/_temp", "RUNNER_TOOL_CACHE": tools,
        "RUNNER_TRACKING_ID": "github_3d5c1e0a-8a8f-4f40-9a0b-3c7a1b8f2e11", "RUNNER_USER": "runner", "RUNNER_WORKSPACE": "/home/runner/work/octo-repo",
        "SELENIUM_JAR_PATH": "/usr/share/java/selenium-server.jar", "SGX_AESM_ADDR": "1", "SHELL": "/bin/bash", "SHLVL": "1",
        "SWIFT_PATH": "/usr/share/swift/usr/bin", "SYSTEMD_EXEC_PID": "623", "USER": "runner", "VCPKG_INSTALLATION_ROOT": "/usr/local/share/vcpkg",
        "XDG_CONFIG_HOME": "/home/runner/.config", "XDG_RUNTIME_DIR": "/run/user/1001", "_": "/usr/bin/env",
        "PATH": "/snap/bin:/home/runner/.local/bin:/opt/pipx_bin:/home/runner/.cargo/bin:/home/runner/.config/composer/vendor/bin:/usr/local/.ghcup/bin:/home/runner/.dotnet/tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin",
        "LEIN_HOME": "/usr/local/lib/lein", "LEIN_JAR": "/usr/local/lib/lein/self-installs/leiningen-2.11.2-standalone.jar",
        "ACTIONS_ORCHESTRATION_ID": "4b0e9c2d-6c0a-4f7e-8f0b-6c6a2f7b1d3e.build.__default",
    }
    return env
