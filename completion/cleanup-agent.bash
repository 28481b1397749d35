# bash completion for cleanup-agent: commands, each command's options and their values, and the session ids of
# this host for `kill` (from `cleanup-agent ps`, with the global options given on the line, so that --state-dir
# counts). Installed as share/bash-completion/completions/cleanup-agent; works sourced on its own too.

# The session ids `ps` lists (its first column), as the line's own global options make it look.
_cleanup_agent_sessions() {
  "$1" "${@:2}" ps 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9a-f]+$/ && length($1) == 32 { print $1 }'
}

# Sets COMPREPLY to what compgen "$@" finds, one per line.
_cleanup_agent_gen() {
  mapfile -t COMPREPLY < <(compgen "$@")
}

# Sets COMPREPLY to the words of $1 that start with $2.
_cleanup_agent_words() {
  _cleanup_agent_gen -W "$1" -- "$2"
}

# Sets COMPREPLY to the files (-f) or directories (-d) that start with $2.
_cleanup_agent_files() {
  _cleanup_agent_gen "$1" -- "$2"
  compopt -o filenames 2>/dev/null
}

# The values of an option that takes one: 0 when it was completed here (or takes free text), 1 when it takes none.
_cleanup_agent_value() {
  local opt=$1 cur=$2
  case $opt in
    --format) _cleanup_agent_words "table json" "$cur" ;;
    --cgroup-driver) _cleanup_agent_words "auto systemd cgroupfs" "$cur" ;;
    --log-level) _cleanup_agent_words "error warning notice info debug" "$cur" ;;
    --network) _cleanup_agent_words "none host bridge" "$cur" ;;
    --on-leak) _cleanup_agent_words "ignore warn fail" "$cur" ;;
    --images) _cleanup_agent_words "keep remove" "$cur" ;;
    --state-dir | --cgroup-root | --workdir | --log-dir)
      _cleanup_agent_files -d "$cur"
      ;;
    --report | --checkpoint | --junit | --metrics-file)
      _cleanup_agent_files -f "$cur"
      ;;
    --docker-host) _cleanup_agent_words "unix:///var/run/docker.sock unix://${XDG_RUNTIME_DIR:-/run/user/$UID}/docker.sock tcp://" "$cur" ;;
    --memory | --pids | --cpus | --timeout | --grace | --ttl | --label | --teardown-timeout | --image | --cpu-limit | \
      --mem-limit | --mount | --env | --older-than | --parallel | --disk-high | --disk-low | --build-cache-keep)
      COMPREPLY=() ;; # free text: nothing to offer
    *) return 1 ;;
  esac
  return 0
}

_cleanup_agent() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} prev_index=$((COMP_CWORD - 1))
  # --opt=value: bash splits it at '=' (COMP_WORDBREAKS); the value's option is the word before the '='.
  if [[ $cur == = ]]; then
    cur=
  elif [[ $prev == = ]]; then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
    prev_index=$((COMP_CWORD - 2))
  fi
  local global_opts="--docker-host --state-dir --cgroup-root --cgroup-driver --log-level --teardown-timeout --help --version"
  local commands="run container-seq gc ps kill check"
  # The command: the first word that is no global option nor the value of one. The global options before it are kept
  # for `ps`, so that kill's ids come from the same state dir.
  local i=1 command='' command_index=0 globals=()
  while ((i < COMP_CWORD)); do
    local w=${COMP_WORDS[i]}
    case $w in
      --docker-host | --state-dir | --cgroup-root | --cgroup-driver | --log-level | --teardown-timeout)
        globals+=("$w")
        if [[ ${COMP_WORDS[i + 1]} == = ]]; then ((i++)); fi
        ((i + 1 < COMP_CWORD)) && globals+=("${COMP_WORDS[i + 1]}")
        ((i += 2))
        continue
        ;;
      -*) ;;
      *)
        command=$w
        command_index=$i
        break
        ;;
    esac
    ((i++))
  done

  if [[ -z $command ]]; then
    if [[ $prev == --* ]] && _cleanup_agent_value "$prev" "$cur"; then
      return 0
    fi
    if [[ $cur == -* ]]; then
      _cleanup_agent_words "$global_opts" "$cur"
    else
      _cleanup_agent_words "$commands" "$cur"
    fi
    return 0
  fi

  # After run's or container-seq's "--": the command to wrap, then its own arguments (files).
  for ((i = command_index + 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} == -- ]]; then
      if ((i + 1 == COMP_CWORD)); then
        _cleanup_agent_gen -c -- "$cur"
      else
        _cleanup_agent_files -f "$cur"
      fi
      return 0
    fi
  done

  if ((prev_index > command_index)) && [[ $prev == --* ]] && _cleanup_agent_value "$prev" "$cur"; then
    return 0
  fi
  local opts
  case $command in
    run) opts="--memory --pids --cpus --timeout --grace --ttl --label --private-tmp --report --junit --on-leak --no-docker-proxy --contain-containers --images --disk-high --disk-low --help --" ;;
    container-seq)
      opts="--image --memory --cpus --pids --timeout --workdir --network --checkpoint --resume --self-protect
            --cpu-limit --mem-limit --junit --log-dir --docker-proxy --mount --env --help --"
      ;;
    gc) opts="--older-than --dry-run --format --metrics-file --parallel --disk-high --disk-low --build-cache-keep --help" ;;
    ps | check) opts="--format --help" ;;
    kill) opts="--help" ;;
    *) return 0 ;;
  esac
  if [[ $cur == -* ]]; then
    _cleanup_agent_words "$opts" "$cur"
  elif [[ $command == kill ]]; then
    _cleanup_agent_words "$(_cleanup_agent_sessions "${COMP_WORDS[0]}" "${globals[@]}")" "$cur"
  elif [[ $command == container-seq ]]; then
    _cleanup_agent_files -f "$cur" # the test files
  fi
  return 0
}

complete -F _cleanup_agent cleanup-agent
