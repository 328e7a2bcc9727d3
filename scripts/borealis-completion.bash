# bash completion for borealis and borealis-admin.
#
#   source scripts/borealis-completion.bash
#
# Completes nouns, verbs, subcommands and options, --wait-until states,
# config files (*.aurora, *.json) and cluster names, read from the same
# clusters.json files the CLIs read: /etc/borealis/clusters.json,
# ~/.borealis/clusters.json and $BOREALIS_CLUSTERS.

_borealis_clusters()
{
    local f
    for f in /etc/borealis/clusters.json "$HOME/.borealis/clusters.json" \
             ${BOREALIS_CLUSTERS:+"$BOREALIS_CLUSTERS"}; do
        [[ -r $f ]] || continue
        grep -o '"name"[[:space:]]*:[[:space:]]*"[^"]*"' "$f" 2>/dev/null |
            sed 's/.*"\([^"]*\)"$/\1/'
    done | sort -u
}

# A job key: the cluster first ("devcluster/"), then free text.
_borealis_complete_key()
{
    local cur=$1
    if [[ $cur != */* ]]; then
        local c
        COMPREPLY=()
        for c in $(_borealis_clusters); do
            [[ $c == "$cur"* ]] && COMPREPLY+=("$c/")
        done
        compopt -o nospace 2>/dev/null
    fi
}

_borealis_complete_config()
{
    local cur=$1
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur" | grep -E '\.(aurora|json)$') $(compgen -d -- "$cur"))
}

_borealis()
{
    local cur prev noun verb i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    # the noun and verb: the first two words that are not options
    local -a words=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == -* ]] && continue
        words+=("${COMP_WORDS[i]}")
    done
    noun=${words[0]}
    verb=${words[1]}

    if [[ -z $noun ]]; then
        COMPREPLY=($(compgen -W "job cron quota config help --version --help -v --verbose" -- "$cur"))
        return
    fi
    if [[ $noun == help ]]; then
        if ((${#words[@]} == 1)); then
            COMPREPLY=($(compgen -W "job cron quota config" -- "$cur"))
        elif ((${#words[@]} == 2)); then
            COMPREPLY=($(compgen -W "$(_borealis_verbs "${words[1]}")" -- "$cur"))
        fi
        return
    fi
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$(_borealis_verbs "$noun") --help" -- "$cur"))
        return
    fi

    case $prev in
    --wait-until)
        COMPREPLY=($(compgen -W "PENDING RUNNING FINISHED" -- "$cur"))
        return ;;
    --bind | --batch-size | --message | -m | --watch-secs | --max-per-instance-failures | \
        --max-total-failures | --wait-timeout)
        return ;;
    esac

    local common="--help -v --verbose" opts="" args
    local config="--bind --read-json"
    local killing="--batch-size --no-batching --message --wait-timeout"
    case "$noun $verb" in
    "job create") opts="--wait-until --wait-timeout $config"; args="key config" ;;
    "job add") opts="--wait-until --wait-timeout"; args="key count" ;;
    "job kill") opts="$killing"; args="key" ;;
    "job killall") opts="$killing"; args="key" ;;
    "job restart") opts="--batch-size --watch-secs --max-per-instance-failures --max-total-failures --message --wait-timeout"; args="key" ;;
    "job status") opts="--write-json"; args="key" ;;
    "job list" | "job open") args="key" ;;
    "job inspect") opts="--raw --write-json $config"; args="key config" ;;
    "job diff") opts="$config"; args="key config" ;;
    "cron schedule") opts="$config"; args="key config" ;;
    "cron deschedule" | "cron start" | "cron show") args="key" ;;
    "quota get") opts="--write-json"; args="key" ;;
    "config list") opts="$config"; args="config" ;;
    *) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $common" -- "$cur"))
        return
    fi
    # which positional argument is this? (skip options and their values)
    local n=0 w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --wait-until | --bind | --batch-size | --message | -m | --watch-secs | \
            --max-per-instance-failures | --max-total-failures | --wait-timeout)
            ((i++)); continue ;;
        -*) continue ;;
        esac
        ((n++))
    done
    # n counts noun and verb too
    local kind
    kind=$(echo $args | cut -d' ' -f$((n - 1)) 2>/dev/null)
    case $kind in
    key) _borealis_complete_key "$cur" ;;
    config) _borealis_complete_config "$cur" ;;
    esac
}

_borealis_verbs()
{
    case $1 in
    job) echo "create add kill killall restart status list inspect diff open" ;;
    cron) echo "schedule deschedule start show" ;;
    quota) echo "get" ;;
    config) echo "list" ;;
    esac
}

_borealis_admin()
{
    local cur prev sub i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local subs="query prune_tasks set_quota increase_quota scheduler_backup_now
        scheduler_list_backups scheduler_stage_recovery scheduler_print_recovery_tasks
        scheduler_delete_recovery_tasks scheduler_commit_recovery scheduler_unload_recovery
        scheduler_snapshot reconcile_tasks host_deactivate host_drain host_activate
        host_status get_scheduler get_cluster_config help"

    local n=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -*) continue ;;
        esac
        [[ -z $sub ]] && sub=${COMP_WORDS[i]}
        ((n++))
    done

    if [[ -z $sub ]]; then
        COMPREPLY=($(compgen -W "$subs --help --version -v --verbose -q --quiet --bypass-leader-redirect" -- "$cur"))
        return
    fi
    case $prev in
    --filename | --post_drain_script | --unsafe_hosts_file)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    --states)
        COMPREPLY=($(compgen -W "PENDING THROTTLED ASSIGNED STARTING RUNNING KILLING RESTARTING
            DRAINING PREEMPTING PARTITIONED FINISHED FAILED KILLED LOST" -- "$cur"))
        return ;;
    -t | --type)
        COMPREPLY=($(compgen -W "explicit implicit" -- "$cur"))
        return ;;
    --grouping)
        COMPREPLY=($(compgen -W "by_host" -- "$cur"))
        return ;;
    esac
    if [[ $sub == help ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
    fi

    local opts="--help -v --verbose --bypass-leader-redirect"
    case $sub in
    query) opts+=" --force --shards --states -l --listformat" ;;
    prune_tasks) opts+=" --states --role --env --limit" ;;
    reconcile_tasks) opts+=" -t --type -b --batch_size" ;;
    host_deactivate | host_activate | host_status) opts+=" --filename --hosts" ;;
    host_drain) opts+=" --filename --hosts --post_drain_script --grouping --override_percentage
        --override_duration --override_reason --unsafe_hosts_file" ;;
    get_cluster_config) opts+=" --sh --export" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    # every subcommand's first positional argument is the cluster
    if ((n == 1)); then
        COMPREPLY=($(compgen -W "$(_borealis_clusters)" -- "$cur"))
    fi
}

complete -F _borealis borealis
complete -F _borealis_admin borealis-admin
